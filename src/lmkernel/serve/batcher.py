"""Dynamic batching: many small requests become a few efficient forward passes.

Requests put their texts in one FIFO queue and await a future. A worker thread (so the event
loop never runs the model) takes up to ``max_batch`` texts, waiting at most ``max_wait_ms``
after the oldest one arrived for others to join; sorts them by length and cuts them into groups
of similar length, because padding is the largest waste on CPU (a random batch of SST-2 runs
~2x the useful FLOPs, BASELINES.md); runs each group; and hands every result back to the future
of the request it came from. A request larger than ``max_batch`` spreads over several batches.

Several workers may share the queue, each running its own batches (``lmkernel serve --workers``):
one single-threaded worker per core wastes no time at OpenMP barriers, and the event loop's bursts
of HTTP work stall only the worker they preempt; but each batch then runs on one core, so
latency grows (docs/benchmark-history.md, "Workers and the event loop").

The batcher knows nothing about models: ``run(items) -> outputs`` is injected, so tests drive it
with plain functions and generation can reuse the queue.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

# Fixed cost of one forward call in token equivalents: MiniLM on this CPU spends as long on a
# call's overhead (op dispatch, small matmuls) as on a few dozen tokens of a batch. ONNX Runtime's
# per-call cost is lower, but serving it with 8, 16 or 48 here gave the same throughput within noise
# (bench/serve_load.py --serve-arg=--runtime=onnx; docs/benchmark-history.md), so one value serves both.
GROUP_OVERHEAD_TOKENS = 48


class QueueFull(Exception):
    """The queue has no room for a request; ``retry_after`` estimates when it will (seconds)."""

    def __init__(self, retry_after: int):
        super().__init__(f"queue full; retry after {retry_after}s")
        self.retry_after = retry_after


class BatcherClosed(Exception):
    """The server is shutting down and takes no new work."""


@dataclass(eq=False)
class _Request:
    items: Sequence[Any]
    future: asyncio.Future
    loop: asyncio.AbstractEventLoop
    results: list[Any] = field(default_factory=list)
    remaining: int = 0
    cancelled: bool = False  # the caller gave up (deadline, disconnect): skip what has not run


@dataclass(eq=False)
class _Slot:
    request: _Request
    index: int
    length: int
    queued_at: float


def plan_groups(lengths: Sequence[int], overhead: int = GROUP_OVERHEAD_TOKENS) -> list[range]:
    """Cut texts sorted longest-first into runs that minimise padded tokens + a per-call overhead.

    A group's cost is ``overhead + size * longest``; exact dynamic programming over the sorted
    order is O(n^2), trivial for n <= a few hundred. With one long text among short ones this
    runs the long one alone instead of padding every short text to its length.
    """
    n = len(lengths)
    best = [0.0] + [math.inf] * n  # best[j]: cheapest cost of the first j texts
    cut = [0] * (n + 1)
    for j in range(1, n + 1):
        for i in range(j):
            cost = best[i] + overhead + (j - i) * lengths[i]
            if cost < best[j]:
                best[j], cut[j] = cost, i
    groups, j = [], n
    while j > 0:
        groups.append(range(cut[j], j))
        j = cut[j]
    return groups[::-1]


class Batcher:
    """A queue of items and worker threads that run them in batches.

    Args:
        run: runs one group of items, returns one output per item (called in a worker thread).
        max_batch: items per batch at most.
        max_wait_ms: how long the oldest queued item waits for the batch to fill.
        max_queue: items waiting at most; ``submit`` raises ``QueueFull`` beyond it.
        length: the cost of an item in tokens, for grouping by length.
        on_start: called once in each worker thread (e.g. ``torch.set_num_threads``).
        on_batch: called after each batch with its size and seconds taken (metrics).
        group_by_length: cut each batch into padded length groups (``plan_groups``); False runs
            it as one group, for a ``run`` that does not pad (``models/unpadded.py``).
        workers: threads taking batches from the queue; ``run`` must be safe to call from all of
            them at once.
    """

    def __init__(self, run: Callable[[list[Any]], list[Any]], *, max_batch: int, max_wait_ms: float,
                 max_queue: int, length: Callable[[Any], int] = len, on_start: Callable[[], None] | None = None,
                 on_batch: Callable[[int, float], None] | None = None, group_by_length: bool = True,
                 workers: int = 1):
        if workers < 1:
            raise ValueError(f"workers must be 1 or more, got {workers}")
        self._run = run
        self._group_by_length = group_by_length
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000
        self.max_queue = max_queue
        self._length = length
        self._on_start = on_start
        self._on_batch = on_batch
        self._queue: deque[_Slot] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self._rate = 0.0  # items per second of one worker, moving average: the basis of Retry-After
        self._threads = [threading.Thread(target=self._work, name=f"lmkernel-batcher-{i}", daemon=True)
                         for i in range(workers)]

    @property
    def depth(self) -> int:
        """Items waiting (not yet taken by a worker)."""
        return len(self._queue)

    @property
    def workers(self) -> int:
        return len(self._threads)

    def start(self) -> None:
        for t in self._threads:
            t.start()

    def close(self, timeout: float | None = None) -> None:
        """Stop taking work, finish everything already queued, then stop the workers."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        deadline = None if timeout is None else time.monotonic() + timeout
        for t in self._threads:
            if t.is_alive():
                t.join(None if deadline is None else max(0.0, deadline - time.monotonic()))

    def retry_after(self, extra: int = 0) -> int:
        """Whole seconds until the queue has likely drained enough for ``extra`` more items."""
        rate = (self._rate or 1.0) * len(self._threads)
        return max(1, math.ceil((len(self._queue) + extra - self.max_queue) / rate))

    async def submit(self, items: Sequence[Any]) -> list[Any]:
        """Queue the items and wait for their outputs, in order.

        Raises:
            QueueFull: the items do not fit in the queue now.
            BatcherClosed: the batcher is shutting down.
            Exception: whatever ``run`` raised for a group holding one of the items.
        """
        if not items:
            return []
        loop = asyncio.get_running_loop()
        req = _Request(items, loop.create_future(), loop, [None] * len(items), len(items))
        now = time.monotonic()
        with self._cond:
            if self._closed:
                raise BatcherClosed()
            if len(self._queue) + len(items) > self.max_queue:
                raise QueueFull(self.retry_after(len(items)))
            self._queue.extend(_Slot(req, i, self._length(x), now) for i, x in enumerate(items))
            self._cond.notify()
        try:
            return await req.future
        finally:
            req.cancelled = True  # no-op when done; on cancellation the worker drops what is left

    def _work(self) -> None:
        if self._on_start is not None:
            self._on_start()
        while (batch := self._take()) is not None:
            if batch:
                self._run_batch(batch)

    def _take(self) -> list[_Slot] | None:
        """The next batch (possibly empty when all were cancelled), or None once closed and drained."""
        with self._cond:
            while not self._queue:
                if self._closed:
                    return None
                self._cond.wait()
            deadline = self._queue[0].queued_at + self.max_wait
            while len(self._queue) < self.max_batch and not self._closed:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            batch = []
            while self._queue and len(batch) < self.max_batch:
                slot = self._queue.popleft()
                if not slot.request.cancelled:
                    batch.append(slot)
            if self._queue:  # more than one batch waits: another worker may start on it now
                self._cond.notify()
            return batch

    def _run_batch(self, batch: list[_Slot]) -> None:
        start = time.perf_counter()
        batch.sort(key=lambda s: -s.length)
        groups = plan_groups([s.length for s in batch]) if self._group_by_length else [range(len(batch))]
        for group in groups:
            slots = [batch[k] for k in group]
            try:
                outputs = self._run([s.request.items[s.index] for s in slots])
            except Exception as e:  # fail the callers of this group, keep serving the others
                for s in slots:
                    s.request.cancelled = True
                    _settle(s.request, error=e)
                continue
            for s, out in zip(slots, outputs):
                s.request.results[s.index] = out
                s.request.remaining -= 1
                if s.request.remaining == 0:
                    _settle(s.request)
        took = time.perf_counter() - start
        rate = len(batch) / max(took, 1e-6)
        self._rate = 0.8 * self._rate + 0.2 * rate if self._rate else rate
        if self._on_batch is not None:
            self._on_batch(len(batch), took)


def _settle(req: _Request, error: BaseException | None = None) -> None:
    """Complete a request's future from the worker thread (once; a closed loop means nobody waits)."""

    def apply() -> None:
        if req.future.done():
            return
        if error is not None:
            req.future.set_exception(error)
        else:
            req.future.set_result(req.results)

    try:
        req.loop.call_soon_threadsafe(apply)
    except RuntimeError:  # the caller's event loop is gone
        pass
