"""QA data on the words the tiny BERT knows (tests/conftest.py), in both file layouts.

A module of its own (not conftest.py): test modules import it by name, and another folder's conftest
module would shadow a ``from conftest import`` when the whole suite runs.
"""

from __future__ import annotations

import json
from pathlib import Path

NOUNS = ["film", "hotel", "phone", "book", "service", "room"]
ADJECTIVES = ["great", "awful", "lovely", "bad", "good", "poor"]


def qa_rows(n: int) -> list[dict]:
    """Flat rows: each context holds one adjective, at a varying place, and that is the answer."""
    rows = []
    for i in range(n):
        noun, adj, other = NOUNS[i % 6], ADJECTIVES[(i // 6) % 6], NOUNS[(i + 2) % 6]
        context = [f"the {noun} was {adj}", f"the {other} and the {noun} was {adj}",
                   f"the {noun} was {adj} and the {other} was the {other}"][i % 3]
        rows.append({"id": f"q{i}", "question": f"the {noun} was", "context": context,
                     "answers": [{"text": adj, "answer_start": context.index(adj)}]})
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def write_squad(path: Path, rows: list[dict], impossible: int = 0) -> Path:
    """The rows in SQuAD layout, one paragraph per context; ``impossible`` extra unanswerable questions."""
    paragraphs: dict[str, list] = {}
    for r in rows:
        paragraphs.setdefault(r["context"], []).append({"id": r["id"], "question": r["question"],
                                                        "answers": r["answers"]})
    for i in range(impossible):
        c = rows[i % len(rows)]["context"]
        paragraphs.setdefault(c, []).append({"id": f"x{i}", "question": "the cat was", "answers": [],
                                             "is_impossible": True})
    data = {"version": "v2.0", "data": [{"title": "t", "paragraphs": [{"context": c, "qas": q}
                                                                      for c, q in paragraphs.items()]}]}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")
    return path
