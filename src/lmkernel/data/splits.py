"""Deterministic hold-out splits: the same seed gives the same rows on every machine."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")


def split_off(items: Sequence[T], ratio: float, seed: int) -> tuple[list[T], list[T]]:
    """Return (kept, held_out) with ``round(ratio * len)`` items held out, chosen by ``seed``."""
    order = list(range(len(items)))
    random.Random(seed).shuffle(order)
    n_out = max(1, round(ratio * len(items))) if items else 0
    out_idx = set(order[:n_out])
    kept = [x for i, x in enumerate(items) if i not in out_idx]
    held = [x for i, x in enumerate(items) if i in out_idx]
    return kept, held
