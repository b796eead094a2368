"""Helpers for the causal-LM tests: small chat and translation rows."""

from __future__ import annotations

import json
from pathlib import Path

PAIRS = [("the cat sat on the mat", "die Katze sitzt auf der Matte"),
         ("a dog runs in the park", "ein Hund läuft im Park"),
         ("two people walk on the street", "zwei Menschen gehen auf der Straße"), ("hello", "hallo")]


def write_jsonl(path: Path, rows: list) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n" for r in rows),
                    encoding="utf-8")
    return path


def chat_rows(n: int) -> list[dict]:
    rows = []
    for i in range(n):
        en, de = PAIRS[i % len(PAIRS)]
        if i % 2:
            rows.append({"prompt": f"translate to German: {en}", "response": de})
        else:
            rows.append({"messages": [{"role": "user", "content": "hello how are you"},
                                      {"role": "assistant", "content": "I am fine thank you"},
                                      {"role": "user", "content": f"translate to German: {en}"},
                                      {"role": "assistant", "content": de}]})
    return rows
