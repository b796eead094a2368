"""Probes: a search trial's looks at its validation metric mid-epoch, so a pruner can stop a poor trial before
its epoch ends. Where they fall and which rows they score; the loop (``_Loop.probe``) runs them."""

from __future__ import annotations

import math

PROBE_ROWS = 100  # enough to rank trials for a pruner; the run's own evaluations score every validation row


def probe_rows(features: list[dict]) -> list[dict]:
    """The validation rows a probe scores: at most PROBE_ROWS, the same seeded sample in every trial (so trials
    compare on the same rows), so that a probe stays cheap next to the training it looks at."""
    import random

    if len(features) <= PROBE_ROWS:
        return list(features)
    return [features[i] for i in sorted(random.Random(0).sample(range(len(features)), PROBE_ROWS))]


def probe_steps(steps_per_epoch: int, probes: int) -> dict[int, int]:
    """In-epoch optimizer step -> k, for a probe after k/probes of an epoch (k < probes; the epoch's end has its
    own evaluation). Steps are rounded up, so a probe never comes before its fraction of the data was seen."""
    out: dict[int, int] = {}
    for k in range(1, max(probes, 0)):
        step = math.ceil(k * steps_per_epoch / probes)
        if 0 < step < steps_per_epoch:
            out.setdefault(step, k)
    return out
