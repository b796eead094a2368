"""Small, learnable data for tests, imported as ``datakit`` from any test folder (``from conftest import``
picks whichever folder's conftest pytest imported last)."""

from __future__ import annotations

import csv
import random
from pathlib import Path

POS_EN = ["great", "wonderful", "excellent", "lovely", "superb", "good"]
NEG_EN = ["awful", "terrible", "boring", "bad", "horrible", "poor"]
POS_ZH = ["很好", "满意", "推荐", "棒"]
NEG_ZH = ["太差", "失望", "难用", "糟糕"]
NOUNS = ["film", "hotel", "phone", "book", "service", "room"]


def make_rows(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """Short, learnable sentiment rows in English and Chinese."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        pos = rng.random() < 0.5
        if i % 3 == 2:
            text = rng.choice(["房间", "电影", "服务"]) + rng.choice(POS_ZH if pos else NEG_ZH)
        else:
            text = f"the {rng.choice(NOUNS)} was {rng.choice(POS_EN if pos else NEG_EN)}"
        rows.append((text, "positive" if pos else "negative"))
    return rows


def write_csv(path: Path, rows, header=("text", "label"), delimiter=",") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, delimiter=delimiter)
        w.writerow(header)
        w.writerows(rows)
    return path
