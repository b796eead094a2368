"""Continuous batching: requests join the running decode batch between steps and leave it when done.

One worker thread owns the model. Each iteration it (1) drops requests whose client left, (2)
admits waiting requests into free slots: those admitted together are prefilled in one left-padded
forward (a lone one without padding) and their KV caches merged into the batch's, and (3) runs
one decode step for every running request at once. A finished request leaves the batch at once,
so a short answer never waits for a long one and a new request waits at most one step, not a
whole generation.

With a ``decoder`` (``models/decode.py``, Llama-family models in fp32 on CPU) steps (2) and (3) are
one forward: the admitted prompts' tokens go through the layers with the running rows' next
tokens, so a newcomer costs the running requests no pass of its own over the weights. While
requests are decoding, a step takes at most CHUNK_TOKENS prompt tokens: a longer prompt is
prefilled in pieces over several steps (its slot taken from the first), so the running requests
keep getting tokens instead of pausing for the whole prompt.

The batch's KV cache is one transformers ``DynamicCache`` whose rows are left-padded to a common
length with an attention mask marking the padding; every row grows by one token per step, so the
padding of a row never changes until rows leave, when all-padding columns are trimmed. Position
ids come from the mask (real tokens before), so a padded row sees exactly the positions it would
alone. transformers' own continuous batching (``generate_batch`` / ``ContinuousBatchingManager``,
5.x) runs on CPU but was many times slower than ``generate`` on two short requests to a
2-layer toy model, and fixes greedy/sampling for the whole manager, with no
per-request seed, stop strings or penalties; hence this small scheduler over the model forward.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ...models.cachearg import cache_of, with_cache
from ..batcher import BatcherClosed, QueueFull
from .sampling import Sampler, SamplingParams
from .text import TextStream

log = logging.getLogger("lmkernel.serve")


@dataclass(frozen=True)
class Delta:
    """New text of a request (may be empty while a character or stop string is incomplete)."""

    text: str
    tokens: int  # completion tokens so far


@dataclass(frozen=True)
class Done:
    finish_reason: str  # stop | length | cancelled
    prompt_tokens: int
    completion_tokens: int
    text: str  # the whole completion


@dataclass(frozen=True)
class Failed:
    error: BaseException


Event = Delta | Done | Failed

_ids = itertools.count()


@dataclass(eq=False)
class GenRequest:
    """One generation in the engine; ``sink`` receives its events (called from the worker thread)."""

    prompt: list[int]
    params: SamplingParams
    sink: Callable[[Event], None]
    id: int = field(default_factory=lambda: next(_ids))
    tokens: list[int] = field(default_factory=list)
    cancelled: bool = False  # set by the caller (client gone, deadline): leaves before the next step
    finish_reason: str | None = None
    sampler: Sampler | None = None
    stream: TextStream | None = None
    prefilled: int = 0  # prompt tokens whose keys and values ``past`` holds (a prompt prefilled in pieces)
    past: Any = None


class Engine:
    """Continuous-batching generation over a causal LM.

    Args:
        model: a transformers causal LM in eval mode.
        decode: token ids -> text (special tokens skipped).
        eos_ids: tokens that end a completion ("stop").
        max_batch: requests decoded together at most; the others wait.
        max_queue: requests waiting at most; ``submit`` raises ``QueueFull`` beyond.
        on_start: called once in the worker thread (thread settings).
        on_step: called after each decode step with (requests in the batch, seconds, tokens made).
        decoder: a ``MixedDecoder`` for the model: prefills ride along with decode steps.
    """

    def __init__(self, model: Any, *, decode: Callable[[Sequence[int]], str], eos_ids: Sequence[int],
                 max_batch: int, max_queue: int, on_start: Callable[[], None] | None = None,
                 on_step: Callable[[int, float, int], None] | None = None, decoder: Any = None):
        self.model = model
        self._decoder = decoder
        self._decode = decode
        self.eos_ids = frozenset(eos_ids)
        self.max_batch = max_batch
        self.max_queue = max_queue
        self._on_start = on_start
        self._on_step = on_step
        self._waiting: deque[GenRequest] = deque()
        self._rows: list[GenRequest] = []  # the running batch, in cache row order
        self._prefilling: list[GenRequest] = []  # prompts partly prefilled (decoder only), oldest first
        self._cache: Any = None  # DynamicCache of the running batch
        self._mask: Any = None  # (rows, cache length) long tensor, 0 = left padding
        self._cond = threading.Condition()
        self._closed = False
        self._rate = 0.0  # finished requests per second (moving average), for Retry-After
        self.steps = 0
        self.trace: list[tuple[int, tuple[int, ...]]] | None = None  # tests: (step, request ids) per step
        self._thread = threading.Thread(target=self._work, name="lmkernel-engine", daemon=True)

    # ------------------------------------------------------------------ the caller's side

    @property
    def depth(self) -> int:
        """Requests waiting for a slot."""
        return len(self._waiting)

    @property
    def pending_prompt_tokens(self) -> int:
        """Prompt tokens still to prefill, of waiting and partly prefilled requests (admission's queued work)."""
        with self._cond:
            return sum(len(r.prompt) - r.prefilled for r in (*self._waiting, *self._prefilling) if not r.cancelled)

    @property
    def running(self) -> int:
        """Requests holding a slot: decoding, or with their prompt partly prefilled."""
        return len(self._rows) + len(self._prefilling)

    def submit(self, prompt: list[int], params: SamplingParams, sink: Callable[[Event], None]) -> GenRequest:
        """Queue a generation; its events go to ``sink``.

        Raises:
            QueueFull: ``max_queue`` requests already wait.
            BatcherClosed: the engine is shutting down.
        """
        req = GenRequest(list(prompt), params, sink)
        with self._cond:
            if self._closed:
                raise BatcherClosed()
            if len(self._waiting) >= self.max_queue:
                raise QueueFull(max(1, round((len(self._waiting) + 1) / (self._rate or 1.0))))
            self._waiting.append(req)
            self._cond.notify()
        return req

    def cancel(self, req: GenRequest) -> None:
        """Free the request's slot before the next step (no-op once finished)."""
        req.cancelled = True

    def start(self) -> None:
        self._thread.start()

    def close(self, timeout: float | None = None) -> None:
        """Take no new requests; finish the running and waiting ones, then stop the worker."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout)

    # ------------------------------------------------------------------ the worker

    def _work(self) -> None:
        if self._on_start is not None:
            self._on_start()
        while True:
            with self._cond:
                while not self._waiting and not self._rows and not self._prefilling:
                    if self._closed:
                        return
                    self._cond.wait()
            self.iterate()

    def iterate(self) -> None:
        """One scheduling round: drop cancelled, admit waiting into free slots, one decode step.

        Public so tests can drive the engine step by step without the thread.
        """
        import torch

        with torch.inference_mode():
            self._leave([r for r in self._rows if r.cancelled], "cancelled")
            with self._cond:
                if any(r.cancelled for r in self._waiting):  # abandoned while waiting: free their queue places
                    for r in [r for r in self._waiting if r.cancelled]:
                        self._finish(r, "cancelled")
                    self._waiting = deque(r for r in self._waiting if not r.cancelled)
                if self._decoder is not None:
                    pieces = self._plan_pieces()
                else:
                    admit: list[GenRequest] = []
                    while self._waiting and len(self._rows) + len(admit) < self.max_batch:
                        r = self._waiting.popleft()
                        if r.cancelled:
                            self._finish(r, "cancelled")
                        else:
                            admit.append(r)
            if self._decoder is not None:
                if self._rows or pieces:
                    self._guarded(list(self._rows) + [r for r, _ in pieces], self._mixed_step, pieces)
                return
            for group in _prefill_groups(admit):
                self._guarded(group, self._admit, group)
            if self._rows:
                self._guarded(list(self._rows), self._step)

    def _plan_pieces(self) -> list[tuple[GenRequest, int]]:
        """(request, prompt tokens prefilled after this step) for the prompts this decoder step takes:
        partly prefilled ones first, then waiting ones into free slots, within the step's token budget
        (CHUNK_TOKENS while requests decode, else PREFILL_TOKENS). Called with the lock held."""
        for r in [r for r in self._prefilling if r.cancelled]:
            self._finish(r, "cancelled")
        self._prefilling = [r for r in self._prefilling if not r.cancelled]
        budget = CHUNK_TOKENS if self._rows else PREFILL_TOKENS
        pieces = []
        for r in self._prefilling:
            if budget <= 0:
                break
            end = min(len(r.prompt), r.prefilled + budget)
            pieces.append((r, end))
            budget -= end - r.prefilled
        taken = len(self._rows) + len(self._prefilling)
        while budget > 0 and self._waiting and taken < self.max_batch:
            r = self._waiting.popleft()
            if r.cancelled:
                self._finish(r, "cancelled")
                continue
            end = min(len(r.prompt), budget)
            pieces.append((r, end))
            budget -= end
            taken += 1
        return pieces

    def _guarded(self, reqs: list[GenRequest], fn: Callable[..., None], *args: Any) -> None:
        """Run ``fn``; if the model fails, fail these requests and reset the batch, keep serving."""
        try:
            fn(*args)
        except Exception as e:  # e.g. out of memory on a huge batch: the process must survive
            log.exception("generation step failed")
            for r in set(reqs) | set(self._rows) | set(self._prefilling):
                if r.finish_reason is None:
                    r.finish_reason = "error"
                    self._emit(r, Failed(e))
            self._rows, self._cache, self._mask, self._prefilling = [], None, None, []
            self._replaced()

    def _admit(self, reqs: list[GenRequest]) -> None:
        """Prefill the admitted requests together, sample each one's first token, merge their caches.

        Prompts are left-padded to the longest, positions counted from each one's first real token,
        so every row sees what it would alone; only the last position's logits are computed."""
        import torch

        for r in reqs:
            r.sampler = Sampler.create(r.params)
            r.stream = TextStream(self._decode, r.params.stop)
        longest = max(len(r.prompt) for r in reqs)
        mask = torch.tensor([[0] * (longest - len(r.prompt)) + [1] * len(r.prompt) for r in reqs])
        ids = torch.tensor([[0] * (longest - len(r.prompt)) + r.prompt for r in reqs])  # 0 under the mask: unseen
        virtual = getattr(self.model, "virtual_tokens", 0)  # prompt/prefix tuning: a prefix before each row
        if virtual:
            mask = torch.cat([torch.ones(len(reqs), virtual, dtype=mask.dtype), mask], 1)
            out = self.model(input_ids=ids, attention_mask=mask, use_cache=True, logits_to_keep=1)
        elif len(reqs) == 1:
            out = self.model(input_ids=ids, use_cache=True, logits_to_keep=1)
        else:
            out = self.model(input_ids=ids, attention_mask=mask, position_ids=(mask.cumsum(1) - 1).clamp(min=0),
                             use_cache=True, logits_to_keep=1)
        keep = [i for i, r in enumerate(reqs) if not self._advance(r, out.logits[i, -1])]
        if keep:
            cache = cache_of(out)
            mask = _take(cache, mask, keep) if len(keep) < len(reqs) else mask
            self._merge([reqs[i] for i in keep], cache, mask)

    def _mixed_step(self, pieces: list[tuple[GenRequest, int]]) -> None:
        """One decoder forward: a decode step for the running rows and the prefill of each piece's
        prompt up to its end; a prompt prefilled to its end samples its first token and joins the batch."""
        import torch

        start = time.perf_counter()
        rows = list(self._rows)
        for r, _ in pieces:
            if r.sampler is None:
                r.sampler = Sampler.create(r.params)
                r.stream = TextStream(self._decode, r.params.stop)
        if rows:
            ids, positions, mask = self._decode_inputs(rows)
        else:
            ids = positions = torch.zeros(0, dtype=torch.long)
            mask = None
        logits, first, prompts = self._decoder.step(ids, positions, mask, self._cache,
                                                    [r.prompt[:end] for r, end in pieces], [r.past for r, _ in pieces])
        if rows:
            self._mask = mask
            self.steps += 1
            if self._on_step is not None:
                self._on_step(len(rows), time.perf_counter() - start, len(rows))
        done = [r for i, r in enumerate(rows) if self._advance(r, logits[i])]
        complete = []
        for j, (r, end) in enumerate(pieces):
            if end < len(r.prompt):  # more of its prompt next step
                r.prefilled, r.past = end, prompts.parts[j]
                if r not in self._prefilling:
                    self._prefilling.append(r)
            else:
                if r in self._prefilling:
                    self._prefilling.remove(r)
                r.past = None
                complete.append(j)
        keep = [j for j in complete if not self._advance(pieces[j][0], first[j])]
        self._leave(done, None)
        if keep:
            mask = _take(prompts, prompts.mask, keep) if len(keep) < len(pieces) else prompts.mask
            self._merge([pieces[j][0] for j in keep], prompts, mask)

    def _step(self) -> None:
        """One decode step for every running request."""
        start = time.perf_counter()
        rows = list(self._rows)
        ids, positions, mask = self._decode_inputs(rows)
        out = self.model(input_ids=ids[:, None], attention_mask=mask, position_ids=positions[:, None],
                         **with_cache(self._cache), use_cache=True)
        self._cache, self._mask = cache_of(out), mask
        self.steps += 1
        if self._on_step is not None:  # before any event: a client that got its answer sees this step counted
            self._on_step(len(rows), time.perf_counter() - start, len(rows))
        logits = out.logits[:, -1]
        done = [r for i, r in enumerate(rows) if self._advance(r, logits[i])]
        self._leave(done, None)

    def _decode_inputs(self, rows: list[GenRequest]) -> tuple[Any, Any, Any]:
        """A decode step's (last token, its position) per row, (rows,) each, and the mask grown by
        that token; the step is traced for tests."""
        import torch

        if self.trace is not None:
            self.trace.append((self.steps, tuple(r.id for r in rows)))
        ids = torch.tensor([r.tokens[-1] for r in rows])
        positions = self._mask.sum(1)  # real tokens before: the new token's position
        return ids, positions, torch.cat([self._mask, torch.ones(len(rows), 1, dtype=self._mask.dtype)], 1)

    def _advance(self, r: GenRequest, logits: Any) -> bool:
        """``_next`` for one request; if its own sampling or decoding fails, only that request fails."""
        try:
            return self._next(r, logits)
        except Exception as e:
            log.exception("sampling failed for one request")
            r.finish_reason = "error"
            self._emit(r, Failed(e))
            return True

    def _next(self, r: GenRequest, logits: Any) -> bool:
        """Sample the request's next token, emit its text; True when the request has finished."""
        assert r.sampler is not None and r.stream is not None
        token = r.sampler(logits, r.prompt + r.tokens)
        r.tokens.append(token)
        eos = token in self.eos_ids and not r.params.ignore_eos
        length = len(r.tokens) >= r.params.max_new_tokens
        visible = r.tokens[:-1] if eos else r.tokens
        delta = r.stream.push(visible, final=eos or length)
        reason = "stop" if eos or r.stream.stopped else "length" if length else None
        if delta:
            self._emit(r, Delta(delta, len(r.tokens)))
        if reason is not None:
            self._finish(r, reason)
            return True
        return False

    def _finish(self, r: GenRequest, reason: str) -> None:
        r.finish_reason = reason
        text = r.stream.text if r.stream is not None else ""
        self._emit(r, Done(reason, len(r.prompt), len(r.tokens), text))
        self._rate = 0.9 * self._rate + 0.1 * 1.0 if self._rate else 1.0

    def _emit(self, r: GenRequest, event: Event) -> None:
        try:
            r.sink(event)
        except RuntimeError:  # the caller's event loop is gone: nobody is listening any more
            r.cancelled = True

    # ------------------------------------------------------------------ the batched cache

    def _merge(self, rows: list[GenRequest], cache: Any, mask: Any) -> None:
        """Append prefilled rows (their cache and padding mask) to the batch, left-padding the shorter side."""
        import torch
        import torch.nn.functional as F

        if self._cache is None:
            self._cache, self._mask, self._rows = cache, mask, list(rows)
            return
        have, length = self._mask.shape[1], mask.shape[1]
        pad_batch, pad_new = max(0, length - have), max(0, have - length)
        for mine, new in zip(self._cache.layers, cache.layers):
            mine.keys = torch.cat([F.pad(mine.keys, (0, 0, pad_batch, 0)), F.pad(new.keys, (0, 0, pad_new, 0))])
            mine.values = torch.cat([F.pad(mine.values, (0, 0, pad_batch, 0)),
                                     F.pad(new.values, (0, 0, pad_new, 0))])
        self._mask = torch.cat([F.pad(self._mask, (pad_batch, 0)), F.pad(mask, (pad_new, 0))])
        self._rows.extend(rows)
        self._replaced()

    def _leave(self, leaving: list[GenRequest], reason: str | None) -> None:
        """Remove rows from the batch (finishing them with ``reason`` if given); trim shared padding."""
        if not leaving:
            return
        gone = set(leaving)
        if reason is not None:
            for r in leaving:
                self._finish(r, reason)
        keep = [i for i, r in enumerate(self._rows) if r not in gone]
        self._rows = [self._rows[i] for i in keep]
        if not keep:
            self._cache = self._mask = None
        else:
            self._mask = _take(self._cache, self._mask, keep)
        self._replaced()

    def _replaced(self) -> None:
        """The cache's tensors were replaced: the decoder's buffers would keep the old ones alive."""
        if self._decoder is not None:
            self._decoder.forget_buffers()


PREFILL_TOKENS = 4096  # prompt tokens per forward (padded ones included without a decoder): bounds its memory
CHUNK_TOKENS = 256  # with a decoder, prompt tokens per step while requests decode: bounds their pause


def _prefill_groups(reqs: list[GenRequest]) -> list[list[GenRequest]]:
    """Requests admitted together, cut into prefill batches of at most PREFILL_TOKENS padded tokens
    (a longer prompt goes alone)."""
    groups: list[list[GenRequest]] = []
    for r in reqs:
        group = groups[-1] if groups else None
        if group and (len(group) + 1) * max(len(r.prompt), *(len(g.prompt) for g in group)) <= PREFILL_TOKENS:
            group.append(r)
        else:
            groups.append([r])
    return groups


def _take(cache: Any, mask: Any, rows: list[int]) -> Any:
    """Keep only ``rows`` of a left-padded cache (in place) and drop the columns now padding in all of
    them; returns their mask."""
    import torch

    index = torch.tensor(rows)
    mask = mask[index]
    lead = int((mask.cumsum(1) == 0).sum(1).min())  # columns that are padding in every row
    for layer in cache.layers:
        layer.keys = layer.keys[index, :, lead:]
        layer.values = layer.values[index, :, lead:]
    return mask[:, lead:]
