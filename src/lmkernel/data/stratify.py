"""Stratified hold-out splits for classification: each label keeps its share of the rows in train,
validation and test, chosen by the seed (the same rows on every machine).

Each held-out split takes ``round(ratio x rows)`` rows of the whole file, spread over the labels by
largest remainder of ``ratio x rows of the label``; a label always keeps at least one training row.
A label with a single row, or a split smaller than the number of labels, cannot be stratified: an
error that says so, as scikit-learn's ``train_test_split(stratify=...)`` refuses them.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Hashable, Sequence
from typing import Any

from ..errors import LmkError


def stratified_split(items: Sequence[Any], ratios: dict[str, float], seed: int, key: Callable[[Any], Hashable],
                     source: str = "data.train") -> tuple[list[Any], dict[str, list[Any]]]:
    """(train, {split name: rows}) with every split's labels in proportion; rows keep their file order."""
    groups: dict[Hashable, list[int]] = {}
    for i, item in enumerate(items):
        groups.setdefault(key(item), []).append(i)
    _check(items, groups, ratios, source)
    rng = random.Random(seed)
    names = sorted(groups, key=str)
    for name in names:
        rng.shuffle(groups[name])
    room = {name: len(groups[name]) - 1 for name in names}  # rows a label can give away
    taken = {name: 0 for name in names}
    held: dict[str, set[int]] = {}
    for split, ratio in ratios.items():
        counts = _allocate(names, groups, room, ratio, max(1, round(ratio * len(items))), rng)
        held[split] = set()
        for name, k in counts.items():
            held[split].update(groups[name][taken[name]:taken[name] + k])
            taken[name] += k
            room[name] -= k
    out = set().union(*held.values()) if held else set()
    train = [x for i, x in enumerate(items) if i not in out]
    return train, {split: [x for i, x in enumerate(items) if i in rows] for split, rows in held.items()}


def _allocate(names: list[Hashable], groups: dict[Hashable, list[int]], room: dict[Hashable, int], ratio: float,
              total: int, rng: random.Random) -> dict[Hashable, int]:
    """Rows per label for one split: the floor of each label's share, then the rest by largest remainder
    (ties in a seeded order), never more than a label can give."""
    share = {name: ratio * len(groups[name]) for name in names}
    counts = {name: min(math.floor(share[name]), room[name]) for name in names}
    order = sorted(names, key=lambda n: (-(share[n] - math.floor(share[n])), rng.random()))
    left = total - sum(counts.values())
    while left > 0:
        placed = False
        for name in order:
            if left > 0 and counts[name] < room[name]:
                counts[name] += 1
                left -= 1
                placed = True
        if not placed:
            break
    return counts


def _check(items: Sequence[Any], groups: dict[Hashable, list[int]], ratios: dict[str, float], source: str) -> None:
    """The inputs a stratified split cannot serve: a label with one row, a split smaller than the labels."""
    single = [name for name, rows in groups.items() if len(rows) == 1]
    if single:
        first = items[groups[single[0]][0]]
        where = f"{getattr(first, 'file', source)} line {first.line}" if getattr(first, "line", None) else source
        raise LmkError(f"label {single[0]!r} has a single example{_more(single)}, so data.split cannot put it in "
                       "both train and the held-out split(s)", where=where,
                       fix="add examples of that label (at least 2; 5 or more to learn it), drop its rows, or give "
                       "data.validation / data.test as files instead of data.split")
    for split, ratio in ratios.items():
        n = max(1, round(ratio * len(items)))
        if n < len(groups):
            need = math.ceil(len(groups) / len(items) * 100) / 100
            raise LmkError(f"data.split.{split}: {ratio:g} of {len(items)} rows is {n} rows, fewer than the "
                           f"{len(groups)} labels, so it cannot hold every label", where=f"data.split.{split}",
                           fix=f"raise data.split.{split} to at least {need:g}, add rows, or give data.{split} "
                           "as a file")


def _more(names: list[Hashable]) -> str:
    return f" (and {len(names) - 1} more label(s) with one: {', '.join(map(repr, names[1:6]))})" if len(names) > 1 \
        else ""
