"""Serving settings: one frozen dataclass that owns every default.

The CLI passes flags into ``ServeSettings`` and nothing else repeats a default, so the server
behaves the same whether it was started by ``lmkernel serve`` or built by ``create_app`` in a
test. Kept free of heavy imports because ``lmkernel --help`` reads the defaults.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from ..errors import LmkError

_COMMENT = re.compile(r"(?:^|\s)#")  # a key file's comment: "#" at a line's start or after whitespace
_RATE_UNITS = {"s": 1.0, "sec": 1.0, "second": 1.0, "m": 60.0, "min": 60.0, "minute": 60.0,
               "h": 3600.0, "hour": 3600.0}


@dataclass(frozen=True)
class ServeSettings:
    """Limits and batching knobs of one server process."""

    max_batch: int = 64  # texts per forward pass
    max_wait_ms: float = 5.0  # how long the first queued text waits for others to join its batch
    max_queue: int = 1024  # texts waiting at most; more is answered 429 + Retry-After
    max_body_bytes: int = 1_000_000
    max_texts: int = 256  # texts per request
    max_input_tokens: int | None = None  # per text; None: the model's training max_length (generation: context)
    max_new_tokens: int = 256  # generation: completion tokens per request at most (the default when not asked)
    rate_limit: str | None = None  # per API key (per client address without keys), e.g. "600/min"
    timeout_s: float = 30.0  # deadline of a request, queueing included; past it: 504
    precision: str = "fp32"  # fp32 | bf16 | auto (bf16 where the CPU/GPU has fast bf16 matmuls)
    threads: int | None = None  # torch intra-op threads per model worker; None: see worker_layout
    workers: int | None = None  # classification/NER model worker threads; None: 1 (worker_layout)
    prepack: bool = True  # fp32 PyTorch on CPU: linear weights packed for oneDNN (models/packed.py); generation:
    # decode steps and joining prefills as one forward (models/decode.py)
    runtime: str = "torch"  # torch | onnx | onnx-int8 (serve/runtime.py: an ONNX Runtime copy of the weights)
    admission: str = "on"  # on: refuse requests estimated past timeout_s before computing (serve/admission.py)
    api_keys: frozenset[str] = field(default_factory=frozenset)
    # limits and hardening (docs/serving.md, "Limits and hardening")
    drain_s: float = 30.0  # on SIGTERM, in-flight requests get this long; then streams end with an error event
    header_timeout_s: float = 10.0  # request line and headers must arrive within it; else the connection closes
    body_timeout_s: float = 30.0  # a body must arrive within it after the headers; else 408
    max_header_bytes: int = 64 * 1024  # request line and headers; beyond, 431
    max_connections: int = 256  # open connections; a request on one more gets 503
    max_auth_failures: int = 10  # missing or wrong API keys per client address per minute; beyond, 429
    trusted_proxies: tuple[str, ...] = ()  # addresses/networks whose X-Forwarded-For names the client
    allowed_hosts: tuple[str, ...] | None = None  # Host header values served ("*": any); None: any (serve derives
    # it from the bind address, guards.default_allowed_hosts)
    allowed_origins: tuple[str, ...] = ()  # browser origins besides the server's own that may POST ("*": any)

    def __post_init__(self) -> None:
        positive = {"max_batch": self.max_batch, "max_queue": self.max_queue, "max_body_bytes": self.max_body_bytes,
                    "max_texts": self.max_texts, "timeout_s": self.timeout_s,
                    "max_new_tokens": self.max_new_tokens, "header_timeout_s": self.header_timeout_s,
                    "body_timeout_s": self.body_timeout_s, "max_header_bytes": self.max_header_bytes,
                    "max_connections": self.max_connections, "max_auth_failures": self.max_auth_failures}
        if self.max_input_tokens is not None:
            positive["max_input_tokens"] = self.max_input_tokens
        if self.threads is not None:
            positive["threads"] = self.threads
        if self.workers is not None:
            positive["workers"] = self.workers
        for name, value in positive.items():
            if not value > 0:
                flag = "--" + name.replace("_", "-")
                raise LmkError(f"{flag} must be positive, got {value}", where=flag, fix=f"pass {flag} 1 or more")
        if not self.drain_s >= 0 or not math.isfinite(self.drain_s):
            raise LmkError(f"--drain-s must be 0 or more, got {self.drain_s}", where="--drain-s")
        for entry in self.trusted_proxies:
            _check_proxy(entry)
        if self.max_wait_ms < 0:
            raise LmkError(f"--max-wait-ms must be 0 or more, got {self.max_wait_ms}", where="--max-wait-ms")
        if self.precision not in ("fp32", "bf16", "auto"):
            raise LmkError(f"--precision {self.precision!r} is not known", where="--precision",
                           fix="use fp32, bf16 or auto")
        from .runtime import RUNTIMES  # no torch behind it: the settings still load before OpenMP does

        if self.runtime not in RUNTIMES:
            raise LmkError(f"--runtime {self.runtime!r} is not known", where="--runtime",
                           fix="use one of: " + ", ".join(RUNTIMES))
        if self.admission not in ("on", "off"):
            raise LmkError(f"--admission {self.admission!r} is not known", where="--admission", fix="use on or off")
        if self.rate_limit is not None:
            parse_rate(self.rate_limit)


def _check_proxy(entry: str) -> None:
    import ipaddress

    try:
        ipaddress.ip_network(entry, strict=False)
    except ValueError as e:
        raise LmkError(f"--trusted-proxies: {entry!r} is not an IP address or network", where="--trusted-proxies",
                       fix="list addresses or networks, e.g. 10.0.0.5,10.1.0.0/16") from e


def split_list(text: str | None) -> tuple[str, ...]:
    """``"a, b,,c"`` -> ``("a", "b", "c")``: a comma-separated flag value."""
    return tuple(p.strip() for p in (text or "").split(",") if p.strip())


def inference_threads() -> int:
    """Default torch threads of a server's inference thread: all the cores it may run on."""
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def worker_layout(settings: ServeSettings, generation: bool) -> tuple[int, int]:
    """(model worker threads, torch threads each) for a server: the cores split between the workers.

    Generation always has one engine thread, as its decode steps must run in order. Classification
    and NER default to one worker too. Two single-threaded workers on a 2-core CPU served the
    MiniLM classifier only slightly faster, and each worker then ran smaller batches on one core,
    so tail latency rose (docs/benchmark-history.md, "Workers and the event loop");
    ``--workers`` offers that trade.
    """
    cores = inference_threads()
    workers = 1 if generation else settings.workers or 1
    return workers, settings.threads or max(1, cores // workers)


def openmp_wait_policy(generation: bool) -> str | None:
    """The OpenMP wait policy a server should start torch with (None: OpenMP's default, spinning).

    Classification and NER: PASSIVE. The event loop needs CPU time to parse HTTP, tokenize and
    answer dozens of short requests a second; OpenMP's workers spin between the model's parallel
    regions and starve it. With spinning workers as many as cores, a busy 2-core machine served a
    small fraction of its 1-thread throughput; with passive workers, more threads served more
    (docs/benchmark-history.md, Serving).
    Generation: the default. A decode step runs hundreds of small parallel regions back to back and
    the loop only forwards a few tokens, so waking sleeping workers costs more than spinning does
    (SmolLM2 served fewer tokens/s with passive workers).
    """
    return None if generation else "PASSIVE"


def parse_rate(text: str) -> float:
    """Requests per second from "600/min", "10/s", "5000/hour" or a bare number (per minute).

    Raises:
        LmkError: the text is not a positive count with an optional unit.
    """
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(?:/\s*([a-z]+))?\s*", text.lower())
    unit = (m.group(2) or "min") if m else None
    if m is None or unit not in _RATE_UNITS or float(m.group(1)) <= 0 or not math.isfinite(float(m.group(1))):
        raise LmkError(f"--rate-limit {text!r} is not a rate", where="--rate-limit",
                       fix="write requests per unit, e.g. 600/min, 10/s or 5000/hour")
    return float(m.group(1)) / _RATE_UNITS[unit]


def read_api_keys(env_var: str | None = None, key_file: str | None = None) -> frozenset[str]:
    """Bearer keys from an environment variable (comma-separated) or a file (one per line; ``#`` starts a
    comment at the start of a line or after a space, so a key may contain ``#``).

    Raises:
        LmkError: the variable is unset or empty, or the file is missing or holds no key; a server
            that was asked for keys must never start open.
    """
    import os
    from pathlib import Path

    if env_var and key_file:
        raise LmkError("--api-key-env and --api-key-file were both given", where="--api-key-env/--api-key-file",
                       fix="pass one source of API keys")
    if env_var:
        raw = os.environ.get(env_var, "")
        keys = frozenset(k.strip() for k in raw.split(",") if k.strip())
        where = f"environment variable {env_var}"
    elif key_file:
        try:
            text = Path(key_file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise LmkError(f"cannot read the API key file {key_file}: {e}", where="--api-key-file",
                           fix="pass a readable UTF-8 file with one key per line") from e
        keys = frozenset(s for line in text.splitlines() if (s := _COMMENT.split(line, maxsplit=1)[0].strip()))
        where = f"file {key_file}"
    else:
        return frozenset()
    if not keys:
        raise LmkError(f"no API keys in {where}", where=where,
                       fix="set it to one or more comma-separated keys (file: one per line)")
    return keys
