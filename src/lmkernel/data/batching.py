"""Batch schedulers: which examples go together in one forward pass.

Padding is the largest waste in encoder training on CPU (random batches of SST-2 execute about
3x the useful FLOPs, see BASELINES.md), so training batches are grouped by length: shuffle, cut
into mega-batches, sort each mega-batch by length, cut into batches, shuffle the batch order.
Order depends only on (seed, epoch), so a resumed run can skip exactly the batches it has done.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

MEGA_BATCH = 50  # batches per sorted pool: large enough to remove most padding, small enough to stay random


def train_batches(
    lengths: Sequence[int],
    batch_size: int,
    seed: int,
    epoch: int,
    group_by_length: bool = True,
    world_size: int = 1,
    rank: int = 0,
) -> list[list[int]]:
    """The batches one process runs in one epoch (equal count on every process)."""
    rng = random.Random(seed * 1_000_003 + epoch)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    if group_by_length:
        pool = batch_size * MEGA_BATCH
        order = [i for s in range(0, len(order), pool)
                 for i in sorted(order[s:s + pool], key=lambda i: -lengths[i])]
    batches = [order[s:s + batch_size] for s in range(0, len(order), batch_size)]
    if group_by_length:
        rng.shuffle(batches)
    if world_size == 1:
        return batches
    usable = len(batches) - len(batches) % world_size
    if usable == 0:
        from ..errors import LmkError

        raise LmkError(f"{len(lengths)} training examples make {len(batches)} batch(es), fewer than the "
                       f"{world_size} processes", where="train.batch_size",
                       fix="use fewer processes or a smaller batch")
    return batches[:usable][rank::world_size]


def eval_batches(lengths: Sequence[int], batch_size: int, world_size: int = 1, rank: int = 0) -> list[list[int]]:
    """Evaluation batches sorted by length (order does not matter for metrics, padding does)."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches = [order[s:s + batch_size] for s in range(0, len(order), batch_size)]
    return batches[rank::world_size]
