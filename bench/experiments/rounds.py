"""Alternating timing rounds, shared by the bench scripts that compare variants in one process.

This VM's speed drifts by ±20 % within minutes, so variants are never timed one after the other:
each round runs every variant once over the same work, the order rotating round by round, and
the median per variant is what counts.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any


def alternate(variants: dict[str, Callable[[Any], Any]], work: Sequence[Any], rounds: int,
              before: Callable[[str], None] | None = None) -> dict[str, float]:
    """Median seconds per item of ``work`` for each variant, a variant being called once per item.
    ``before(name)`` runs ahead of a variant's turn (to switch the model to it). Prints one line per round."""
    times: dict[str, list[float]] = {name: [] for name in variants}
    names = list(variants)
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:  # rotate who goes first
            if before is not None:
                before(name)
            t = time.perf_counter()
            for item in work:
                variants[name](item)
            times[name].append((time.perf_counter() - t) / len(work))
        print(f"round {r}: " + ", ".join(f"{n} {times[n][-1] * 1000:.1f} ms" for n in names), flush=True)
    return {n: statistics.median(v) for n, v in times.items()}
