import random

import pytest

from lmkernel.data import eval_batches, split_off, train_batches
from lmkernel.errors import LmkError


def lengths(n=1000, seed=0):
    rng = random.Random(seed)
    return [rng.randint(3, 60) for _ in range(n)]


def padded(batches, ls):
    return sum(max(ls[i] for i in b) * len(b) for b in batches)


def test_every_example_once_and_deterministic():
    ls = lengths()
    a = train_batches(ls, 32, seed=1, epoch=0)
    assert sorted(i for b in a for i in b) == list(range(len(ls)))
    assert a == train_batches(ls, 32, seed=1, epoch=0)
    assert a != train_batches(ls, 32, seed=1, epoch=1)
    assert a != train_batches(ls, 32, seed=2, epoch=0)


def test_grouping_cuts_padding():
    ls = lengths()
    grouped = padded(train_batches(ls, 32, 0, 0, group_by_length=True), ls)
    random_ = padded(train_batches(ls, 32, 0, 0, group_by_length=False), ls)
    assert grouped < 0.7 * random_
    assert grouped < 1.1 * sum(ls)


def test_ranks_get_disjoint_equal_shards():
    ls = lengths(1010)
    shards = [train_batches(ls, 16, 3, 0, True, world_size=2, rank=r) for r in (0, 1)]
    assert len(shards[0]) == len(shards[1])
    seen = [i for s in shards for b in s for i in b]
    assert len(seen) == len(set(seen))


def test_too_few_batches_for_processes():
    with pytest.raises(LmkError, match="fewer than the 4 processes"):
        train_batches([5, 5], 1, 0, 0, world_size=4, rank=0)


def test_eval_batches_sorted_and_complete():
    ls = lengths(100)
    b = eval_batches(ls, 10)
    assert sorted(i for x in b for i in x) == list(range(100))
    assert [ls[x[0]] for x in b] == sorted((ls[x[0]] for x in b), reverse=True)


def test_split_off_is_seeded():
    items = list(range(100))
    kept, held = split_off(items, 0.2, seed=5)
    assert len(held) == 20 and sorted(kept + held) == items
    assert split_off(items, 0.2, seed=5) == (kept, held)
    assert split_off(items, 0.2, seed=6)[1] != held


def test_unknown_token_share():
    from lmkernel.pipeline import unknown_token_share

    feats = [{"input_ids": [2, 1, 1, 3]}, {"input_ids": [2, 5, 3, 7]}]
    assert unknown_token_share(feats, 1) == 0.25
    assert unknown_token_share(feats, None) == 0.0


def test_best_checkpoint_direction_per_metric():
    from lmkernel.evaluation.metrics import improved as _improved

    assert _improved(0.5, 0.6, "loss") and _improved(8.0, 9.0, "perplexity")
    assert not _improved(9.5, 9.0, "perplexity")
    assert _improved(0.9, 0.8, "accuracy") and _improved(0.9, 0.8, "f1") and not _improved(0.7, 0.8, "f1")
