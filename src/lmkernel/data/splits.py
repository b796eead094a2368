"""Deterministic hold-out splits: the same seed gives the same rows on every machine."""

from __future__ import annotations

import random
from collections.abc import Callable, Hashable, Sequence
from typing import TypeVar

T = TypeVar("T")


def split_off(items: Sequence[T], ratio: float, seed: int,
              group: Callable[[T], Hashable] | None = None) -> tuple[list[T], list[T]]:
    """Return (kept, held_out) with ``round(ratio * len)`` items held out, chosen by ``seed``; with
    ``group``, whole groups (a QA context's questions) go to one side, as close to that count as they fall."""
    if group is not None:
        return _split_groups(items, ratio, seed, group)
    order = list(range(len(items)))
    random.Random(seed).shuffle(order)
    n_out = max(1, round(ratio * len(items))) if items else 0
    out_idx = set(order[:n_out])
    kept = [x for i, x in enumerate(items) if i not in out_idx]
    held = [x for i, x in enumerate(items) if i in out_idx]
    return kept, held


def _split_groups(items: Sequence[T], ratio: float, seed: int,
                  group: Callable[[T], Hashable]) -> tuple[list[T], list[T]]:
    keys = list(dict.fromkeys(group(x) for x in items))
    random.Random(seed).shuffle(keys)
    want = max(1, round(ratio * len(items))) if items else 0
    sizes: dict[Hashable, int] = {}
    for x in items:
        sizes[group(x)] = sizes.get(group(x), 0) + 1
    held_keys: set[Hashable] = set()
    taken = 0
    for k in keys:
        if taken >= want:
            break
        held_keys.add(k)
        taken += sizes[k]
    kept = [x for x in items if group(x) not in held_keys]
    held = [x for x in items if group(x) in held_keys]
    return kept, held
