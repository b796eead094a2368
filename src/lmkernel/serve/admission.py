"""Admission control: refuse, before any compute, a request that cannot finish within the deadline.

Without it a request too big for this machine (256 long texts, a prompt near the context size on
a small CPU) computes until ``--timeout-s`` and then gets a 504, holding the model the whole time.
Here each request's cost is estimated from measured throughput: tokens per second of the encoder
forward (classification, NER), of prefill and of decode, measured once after warm-up on this
machine (``calibrate``) and then kept as a moving average of real batches and decode steps.
A request whose own estimate is over the deadline is a 413 (it can never fit: send less); one
that fits alone but not behind the work already admitted is a 429 with Retry-After. Estimates
are rough by nature, so only requests estimated past the deadline are refused. ``--admission off``
turns it off.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .http_errors import ApiError

log = logging.getLogger("lmkernel.serve")

EWMA_WEIGHT = 0.2  # share of each new measurement in the moving average
CALIBRATION_TOKENS = 128  # per text (or prompt), at most the model's input limit
CALIBRATION_TEXTS = 8
CALIBRATION_NEW_TOKENS = 8
CALIBRATION_TEXT = "Warm up the model and measure how fast it reads. "


@dataclass
class Rates:
    """Measured throughput, tokens per second; None where the model does not do that kind of work."""

    forward: float | None = None  # encoder forward over a batch (classification, NER)
    prefill: float | None = None  # prompt tokens of a generation
    decode: float | None = None  # new tokens of one generation (a decode step makes one per request)


class Admission:
    """Per-server estimates of request cost, and the admitted work not yet finished.

    Args:
        deadline_s: the request deadline (``--timeout-s``).
        rates: the starting throughput (``calibrate``'s, or a test's).
    """

    def __init__(self, deadline_s: float, rates: Rates):
        self.deadline_s = deadline_s
        self.rates = rates
        self._lock = threading.Lock()
        self._outstanding: dict[int, float] = {}  # ticket -> estimated seconds of admitted forward work
        self._tickets = 0

    # ---------------------------------------------------------------- measurements

    def observe(self, kind: str, tokens: int, seconds: float) -> None:
        """Fold one measurement (``kind``: forward, prefill or decode) into the moving average."""
        if tokens <= 0 or seconds <= 0:
            return
        rate = tokens / seconds
        with self._lock:
            old = getattr(self.rates, kind)
            setattr(self.rates, kind, rate if old is None else (1 - EWMA_WEIGHT) * old + EWMA_WEIGHT * rate)

    def on_decode_step(self, rows: int, seconds: float, tokens: int) -> None:
        """The engine's step callback: each running generation gains one token per step."""
        self.observe("decode", 1, seconds)

    def timed(self, run: Callable[[list[Any]], list[Any]], count: Callable[[list[Any]], int],
              parallel: int = 1) -> Callable[[list[Any]], list[Any]]:
        """``run`` (a batcher's model call) that also measures forward throughput; ``parallel`` workers
        run such calls at once, so the server's throughput is that many times one call's."""

        def timed_run(items: list[Any]) -> list[Any]:
            start = time.perf_counter()
            out = run(items)
            self.observe("forward", count(items) * parallel, time.perf_counter() - start)
            return out

        return timed_run

    # ---------------------------------------------------------------- decisions

    def admit_forward(self, tokens: int, texts: int, longest: int | None) -> int:
        """A ticket for a batch request's work (``release`` it when done).

        Raises:
            ApiError: 413 when the request alone is estimated past the deadline, 429 when the work
                admitted before it would push it past.
        """
        rate = self.rates.forward
        if not rate:
            return self._add(0.0)
        own = tokens / rate
        size = f"of up to {longest} tokens" if longest is not None else f"({tokens} tokens)"
        what = f"{texts} text{'s' * (texts != 1)} {size} at ~{_fig(rate)} tokens/s"
        self._check(own, self.queued_s, what, "send fewer or shorter texts")
        return self._add(own)

    def check_texts(self, texts: Sequence[str], cap: int) -> None:
        """Before tokenizing (which a long body makes slow): 413 when even a lower bound of the tokens is
        past the deadline. Each whitespace-separated word is at least one token in the tokenizers we serve
        (WordPiece, byte-level BPE, SentencePiece); a text counts at most ``cap`` (its truncation)."""
        rate = self.rates.forward
        if not rate:
            return
        tokens = sum(min(len(t.split(maxsplit=cap)), cap) for t in texts)
        own = tokens / rate
        if own > self.deadline_s:
            raise ApiError(413, f"estimated at least {_fig(own)} s for {len(texts)} text{'s' * (len(texts) != 1)} "
                           f"(at least {tokens} tokens) at ~{_fig(rate)} tokens/s, over the {self.deadline_s:g} s "
                           "deadline; send fewer or shorter texts, or raise --timeout-s")

    def release(self, ticket: int) -> None:
        with self._lock:
            self._outstanding.pop(ticket, None)

    def check_generation(self, prompt_tokens: int, new_tokens: int, stream: bool, queued_prompt_tokens: int) -> None:
        """Refuse a generation that cannot start (stream) or finish (otherwise) within the deadline.

        Raises:
            ApiError: 413 alone past the deadline, 429 behind the prompts still to prefill.
        """
        prefill, decode = self.rates.prefill, self.rates.decode
        if not prefill:
            return
        own = prompt_tokens / prefill
        what = f"a prompt of {prompt_tokens} tokens at ~{_fig(prefill)} tokens/s"
        fix = "send a shorter prompt"
        if not stream and decode:
            own += new_tokens / decode
            what += f" and up to {new_tokens} new tokens at ~{_fig(decode)} tokens/s"
            fix += ", ask for fewer new tokens, or stream (a stream only has to start within the deadline)"
        self._check(own, queued_prompt_tokens / prefill, what, fix)

    @property
    def queued_s(self) -> float:
        """Estimated seconds of forward work admitted and not finished."""
        with self._lock:
            return sum(self._outstanding.values())

    def _add(self, seconds: float) -> int:
        with self._lock:
            self._tickets += 1
            self._outstanding[self._tickets] = seconds
            return self._tickets

    def _check(self, own: float, queued: float, what: str, fix: str) -> None:
        limit = self.deadline_s
        if own > limit:
            raise ApiError(413, f"estimated {_fig(own)} s for {what}, over the {limit:g} s deadline; {fix}, "
                           "or raise --timeout-s")
        if own + queued > limit:
            wait = max(1, math.ceil(own + queued - limit))
            raise ApiError(429, f"server busy: estimated {_fig(own)} s for {what}, behind ~{_fig(queued)} s of "
                           f"work already admitted, over the {limit:g} s deadline; retry after {wait}s",
                           type_="overloaded", headers={"Retry-After": str(wait)})


def _fig(x: float) -> str:
    """A figure to 2 significant digits (estimates are not more precise than that)."""
    return f"{x:.2g}" if x < 100 else f"{round(x, -int(math.floor(math.log10(x))) + 1):.0f}"


# ---------------------------------------------------------------- calibration

def count_tokens(predictor: Any, items: Sequence[Any]) -> int:
    """Tokens in a batch of encoded items: id lists, or texts the predictor counts (NER)."""
    if items and isinstance(items[0], str):
        counter = getattr(predictor, "tokens", None)
        return counter(list(items)) if counter else sum(len(t.split()) for t in items)
    return sum(len(x) for x in items)


def calibrate(predictor: Any, deadline_s: float) -> Admission:
    """An ``Admission`` with this machine's throughput for ``predictor``, measured after its warm-up.

    A failed measurement leaves that rate unknown (such requests are admitted, as without admission
    control) rather than keeping the server from starting.
    """
    rates = Rates()
    try:
        if getattr(predictor, "kind", "batch") == "generate":
            rates.prefill, rates.decode = _generation_rates(predictor)
        else:
            rates.forward = _forward_rate(predictor)
    except Exception:  # a predictor we cannot measure: serve it without estimates, say why in the log
        log.exception("admission control: could not measure throughput; requests are admitted unestimated")
    log.info("admission control: %s", ", ".join(f"{k} ~{_fig(v)} tokens/s" for k, v in vars(rates).items() if v)
             or "no rates")
    return Admission(deadline_s, rates)


def _best_of(n: int, fn: Callable[[], Any]) -> float:
    best = math.inf
    for _ in range(n):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return max(best, 1e-6)


def _forward_rate(predictor: Any) -> float | None:
    length = min(CALIBRATION_TOKENS, int(getattr(predictor, "max_input_tokens", CALIBRATION_TOKENS)))
    text = CALIBRATION_TEXT * (length // 8 + 1)
    items = predictor.encode([text] * CALIBRATION_TEXTS, True)
    tokens = count_tokens(predictor, items)
    return tokens / _best_of(2, lambda: predictor(items)) if tokens else None


def _generation_rates(predictor: Any) -> tuple[float | None, float | None]:
    """Prefill tokens/s from a one-token generation; decode tokens/s from the time a few more tokens add."""
    from .generation.sampling import SamplingParams

    length = min(CALIBRATION_TOKENS, int(predictor.max_input_tokens))
    ids = predictor.encode_prompt(CALIBRATION_TEXT * (length // 8 + 1), True, "prompt", True)[:length]
    engine = predictor.make_engine(max_batch=1, max_queue=1)

    def run(new: int) -> None:
        engine.submit(ids, SamplingParams(max_new_tokens=new, temperature=0.0, ignore_eos=True), lambda _: None)
        while engine.running or engine.depth:
            engine.iterate()

    one = _best_of(2, lambda: run(1))
    more = _best_of(2, lambda: run(1 + CALIBRATION_NEW_TOKENS))
    return len(ids) / one, CALIBRATION_NEW_TOKENS / max(more - one, 1e-6)
