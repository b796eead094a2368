"""The bounded, balanced pair sampler of few-shot contrastive tuning.

SetFit draws, for every example and every "iteration", one partner of the same class and one of another
class, so the number of pairs grows with the examples, not with the square of the classes: 77 intents cost
what 2 sentiments cost per example. The same rule here, with the budget stated as pairs per example (half
positive, half negative) and an overall cap.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from ..errors import LmkError


def check_classes(label_ids: list[int], labels: list[str]) -> None:
    """Every class needs two examples to make a positive pair; say which do not, and what to do."""
    counts: dict[int, int] = defaultdict(int)
    for y in label_ids:
        counts[y] += 1
    single = [labels[y] for y, n in sorted(counts.items()) if n < 2]
    if not single:
        return
    every = len(single) == len(counts)
    what = (f"every one of the {len(counts)} classes has a single training example ({len(label_ids)} examples "
            "for as many classes)" if every else
            f"{len(single)} class(es) with a single training example: {', '.join(map(repr, single[:10]))}"
            + (" ..." if len(single) > 10 else ""))
    raise LmkError(what + "; contrastive few-shot tuning needs two examples of a class to make a positive pair",
                   where="data.train",
                   fix="add a second example of each such class, or set tuning.fewshot.head: prototype (nearest "
                   "class mean, no pairs and no encoder training)")


def sample_pairs(label_ids: list[int], pairs_per_example: int, max_pairs: int | None,
                 seed: int) -> list[tuple[int, int, float]]:
    """``(i, j, target)`` pairs: for each example, ``pairs_per_example // 2`` partners of its class
    (target 1, never itself) and as many of other classes (target 0), shuffled; at most ``max_pairs``
    (a random subset keeping the half/half balance). Deterministic for a seed."""
    rng = np.random.default_rng(seed)
    y = np.asarray(label_ids)
    by_class = {c: np.flatnonzero(y == c) for c in np.unique(y)}
    others = {c: np.flatnonzero(y != c) for c in by_class}
    half = max(pairs_per_example // 2, 1)
    positives, negatives = [], []
    for i, c in enumerate(y):
        same = by_class[c][by_class[c] != i]
        for j in rng.choice(same, size=half, replace=len(same) < half):
            positives.append((i, int(j), 1.0))
        if len(others[c]):
            for j in rng.choice(others[c], size=half, replace=len(others[c]) < half):
                negatives.append((i, int(j), 0.0))
    if max_pairs is not None and len(positives) + len(negatives) > max_pairs:
        keep = max_pairs // 2
        positives = [positives[k] for k in rng.permutation(len(positives))[:keep]]
        negatives = [negatives[k] for k in rng.permutation(len(negatives))[:max_pairs - keep]]
    pairs = positives + negatives
    return [pairs[k] for k in rng.permutation(len(pairs))]
