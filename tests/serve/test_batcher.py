"""The dynamic batcher with plain functions as the model: grouping, routing, limits, shutdown."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from lmkernel.serve.batcher import Batcher, BatcherClosed, QueueFull, plan_groups


def test_plan_groups_splits_off_a_long_outlier_and_keeps_similar_lengths_together():
    assert plan_groups([100, 10, 10, 10, 10], overhead=20) == [range(0, 1), range(1, 5)]
    assert plan_groups([12, 11, 10, 10], overhead=20) == [range(0, 4)]  # splitting would save less than a call
    assert plan_groups([], overhead=20) == []
    groups = plan_groups([50] * 3 + [5] * 40, overhead=96)
    assert [len(g) for g in groups] == [3, 40]


def run_async(coro):
    return asyncio.run(coro)


def make(run, **kw) -> Batcher:
    opts = {"max_batch": 8, "max_wait_ms": 30, "max_queue": 100, "length": lambda _: 1} | kw
    b = Batcher(run, **opts)
    b.start()
    return b


def test_every_caller_gets_its_own_results_in_order_and_requests_share_batches():
    sizes = []

    def run(items):
        sizes.append(len(items))
        return [x * 10 for x in items]

    b = make(run, max_batch=64)

    async def main():
        reqs = [list(range(i, i + 1 + i % 3)) for i in range(20)]
        outs = await asyncio.gather(*(b.submit(r) for r in reqs))
        assert outs == [[x * 10 for x in r] for r in reqs]

    run_async(main())
    b.close()
    assert sum(sizes) == sum(1 + i % 3 for i in range(20))
    assert len(sizes) < 10  # 20 requests became a few batches


def test_workers_run_batches_side_by_side_and_each_caller_gets_its_own_results():
    running, overlapped, names = [0], [False], set()
    lock = threading.Lock()

    def run(items):
        with lock:
            running[0] += 1
            overlapped[0] |= running[0] > 1
            names.add(threading.current_thread().name)
        time.sleep(0.05)
        with lock:
            running[0] -= 1
        return [x * 10 for x in items]

    b = make(run, max_batch=2, max_wait_ms=0, workers=2)
    assert b.workers == 2

    async def main():
        reqs = [[i, i + 100] for i in range(8)]
        assert await asyncio.gather(*(b.submit(r) for r in reqs)) == [[x * 10 for x in r] for r in reqs]

    run_async(main())
    b.close()
    assert overlapped[0] and len(names) == 2
    assert not any(t.is_alive() for t in b._threads)  # close() stopped every worker
    with pytest.raises(ValueError, match="workers"):
        Batcher(run, max_batch=2, max_wait_ms=0, max_queue=4, workers=0)


def test_a_request_larger_than_max_batch_spans_batches():
    seen = []
    b = make(lambda items: seen.append(len(items)) or items, max_batch=4, max_wait_ms=0)
    assert run_async(b.submit(list(range(10)))) == list(range(10))
    b.close()
    assert max(seen) <= 4 and sum(seen) == 10


def test_queue_full_raises_with_retry_after():
    gate = threading.Event()
    b = make(lambda items: gate.wait(5) and items, max_batch=1, max_wait_ms=0, max_queue=2)

    async def main():
        first = asyncio.ensure_future(b.submit([1]))
        await asyncio.sleep(0.05)  # the worker holds item 1
        second = asyncio.ensure_future(b.submit([2, 3]))
        await asyncio.sleep(0.01)
        with pytest.raises(QueueFull) as e:
            await b.submit([4])
        assert e.value.retry_after >= 1
        gate.set()
        assert await first == [1] and await second == [2, 3]

    run_async(main())
    b.close()


def test_cancelled_requests_are_skipped_and_errors_reach_only_their_callers():
    ran = []

    def run(items):
        ran.extend(items)
        if "boom" in items:
            raise ValueError("model failed")
        time.sleep(0.05)
        return items

    b = make(run, max_batch=1, max_wait_ms=0)

    async def main():
        slow = asyncio.ensure_future(b.submit(["a"]))
        await asyncio.sleep(0.01)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(b.submit(["dropped"]), 0.01)
        with pytest.raises(ValueError, match="model failed"):
            await b.submit(["boom"])
        assert await slow == ["a"]
        assert await b.submit(["after"]) == ["after"]

    run_async(main())
    b.close()
    assert "dropped" not in ran


def test_close_drains_queued_work_then_refuses_new():
    b = Batcher(lambda items: items, max_batch=2, max_wait_ms=0, max_queue=10, length=lambda _: 1)

    async def main():
        pending = asyncio.ensure_future(b.submit([1, 2, 3]))
        await asyncio.sleep(0.01)  # queued while the worker is not running yet
        b.start()
        await asyncio.to_thread(b.close, 5)
        assert await pending == [1, 2, 3]
        with pytest.raises(BatcherClosed):
            await b.submit([4])

    run_async(main())
