"""NER test data built from the tiny_bert fixture's vocabulary (so no word becomes [UNK]).

Entities: PLACE (hotel, room, 房间) and WORK (film, book, 电影); "hotel room" is a two-word PLACE.
Chinese sentences are one character per token, as Chinese NER corpora are.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

PLACES = ["hotel", "room"]
WORKS = ["film", "book"]
ADJ = ["great", "good", "awful", "bad", "boring", "lovely"]
ZH_ENT = {"房间": "PLACE", "电影": "WORK"}
ZH_ADJ = ["很好", "太差", "失望", "满意"]


def make_sentences(n: int, seed: int = 0) -> list[tuple[list[str], list[str]]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        if i % 4 == 3:
            word = rng.choice(list(ZH_ENT))
            adj = rng.choice(ZH_ADJ)
            kind = ZH_ENT[word]
            out.append((list(word + adj), [f"B-{kind}", f"I-{kind}", "O", "O"]))
        elif i % 4 == 2:
            out.append((["the", "hotel", "room", "was", rng.choice(ADJ)], ["O", "B-PLACE", "I-PLACE", "O", "O"]))
        else:
            kind, word = rng.choice([("PLACE", w) for w in PLACES] + [("WORK", w) for w in WORKS])
            out.append((["the", word, "was", rng.choice(ADJ)], ["O", f"B-{kind}", "O", "O"]))
    return out


def write_conll(path: Path, sents, iob1: bool = False, docstart: bool = True) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["-DOCSTART- -X- O", ""] if docstart else []
    for toks, tags in sents:
        if iob1:
            tags = [("I-" + t[2:]) if t.startswith("B-") else t for t in tags]
        lines += [f"{t} X {g}" for t, g in zip(toks, tags)] + [""]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_jsonl(path: Path, sents) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps({"tokens": t, "tags": g}, ensure_ascii=False) + "\n" for t, g in sents),
                    encoding="utf-8")
    return path
