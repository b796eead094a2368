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


def _opt(default, help: str):  # noqa: A002
    """A setting that is also a ``lmkernel serve`` flag: its default and its help are written here only
    (``clikit.settings_options`` makes the flags)."""
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class ServeSettings:
    """Limits and batching knobs of one server process; each field with help text is a serve flag."""

    max_batch: int = _opt(64, "Texts per forward pass of the dynamic batcher; for generation, requests decoded "
                          "together.")
    max_wait_ms: float = _opt(5.0, "How long a queued text waits for others to fill its batch.")
    max_queue: int = _opt(1024, "Texts (generation: requests) waiting at most; beyond, 429 with Retry-After.")
    max_body_bytes: int = _opt(1_000_000, "Largest request body; beyond, 413.")
    max_texts: int = _opt(256, "Texts per request; beyond, 413.")
    max_input_tokens: int | None = _opt(None, "Tokens per text or prompt; beyond, 413 unless the request sets "
                                        "truncate (default: the training max_length; generation: the context).")
    max_new_tokens: int = _opt(256, "Generation: completion tokens per request at most (and the default); asking "
                               "for more is a 422.")
    rate_limit: str | None = _opt(None, "Requests per API key (per client address without keys), e.g. 600/min "
                                  "or 10/s; beyond, 429.")
    timeout_s: float = _opt(30.0, "Deadline per request, queueing included; beyond, 504.")
    precision: str = _opt("fp32", "fp32 | bf16 (autocast) | auto (bf16 where matmuls are fast in it).")
    threads: int | None = _opt(None, "Torch threads per model worker (default: all cores for generation; "
                               "classification/NER: cores / workers). Classification/NER servers start OpenMP "
                               "with OMP_WAIT_POLICY=PASSIVE unless set, so the event loop gets CPU time.")
    workers: int | None = _opt(None, "Classification/NER: threads that each run their own batches, splitting the "
                               "cores (default 1); more workers trade tail latency for a little throughput at "
                               "saturation.")
    prepack: bool = _opt(True, "Under --runtime torch on CPU, prepare the model at load. Classification/NER: pack "
                         "each linear layer's weight once for oneDNN (in bf16 with --precision bf16), not on every "
                         "call. Generation (Llama-family models): run each decode step and the prompts that join "
                         "it as one forward. --no-prepack keeps transformers' forward and torch's own GEMM.")
    runtime: str = _opt("torch", "torch | onnx | onnx-int8. onnx: serve an ONNX Runtime copy of the weights "
                        "(BENCHMARKS.md compares it with the default torch runtime); onnx-int8: its int8-quantized "
                        "copy (slightly different outputs). Built once under RUN/serving/ and rebuilt when the "
                        "weights change; classification artifacts.")
    admission: str = _opt("on", "on | off. on: measure this machine's throughput after warm-up (and keep "
                          "measuring) and refuse, before computing, a request estimated to take longer than "
                          "--timeout-s: 413 when it alone cannot fit, 429 + Retry-After behind the work already "
                          "admitted; the message gives the estimate. off: every request computes until done or "
                          "the deadline (504).")
    api_keys: frozenset[str] = field(default_factory=frozenset)  # from --api-key-env / --api-key-file
    # limits and hardening (docs/serving.md, "Limits and hardening")
    drain_s: float = _opt(30.0, "On SIGTERM, how long requests in flight get to finish; then streams end with an "
                          "error event and the rest get 503.")
    header_timeout_s: float = _opt(10.0, "Request line and headers must arrive within this (else the connection "
                                   "closes): slow clients cannot hold connections.")
    body_timeout_s: float = _opt(30.0, "A request body must arrive within this after its headers; beyond, 408.")
    max_header_bytes: int = _opt(64 * 1024, "Largest request line and headers; beyond, 431.")
    max_connections: int = _opt(256, "Open connections at most; a request on one more gets 503 (bounds the "
                                "server's sockets and memory).")
    max_auth_failures: int = _opt(10, "Missing or wrong API keys per client address per minute; beyond, 429, so "
                                  "keys cannot be guessed at speed.")
    trusted_proxies: tuple[str, ...] = _opt((), "Comma-separated proxy addresses/networks whose X-Forwarded-For "
                                            "names the client (rate limits are per client); default none, so "
                                            "clients cannot forge it.")
    allowed_hosts: tuple[str, ...] | None = _opt(None, "Comma-separated Host names served, or '*' (against DNS "
                                                 "rebinding; default: the bind address's names, any for 0.0.0.0).")
    allowed_origins: tuple[str, ...] = _opt((), "Comma-separated browser origins (e.g. https://app.example.com) "
                                            "besides the server's own that may POST, or '*'; others get 403.")
    guard: str | None = _opt(None, "YAML file of a guard: section (PII, blocklists, offensive content, ood and "
                             "low-confidence flags; docs/trust.md) applied to inputs and generated text "
                             "(default: the run's stored guard: section; without one only chat-template control "
                             "tokens are looked for).")
    # monitoring, alerts and audit (docs/trust.md, "Monitoring, alerts and audit")
    alerts: str | None = _opt(None, "Alert rules YAML file (docs/trust.md): judged continuously over the monitor's "
                              "windows (GET /v1/monitor); firing and resolving go to the log and --webhook.")
    webhook: str | None = _opt(None, "URL that gets a JSON POST (Alertmanager-like) per alert firing or resolving, "
                               "from a background queue, retried with back-off.")
    audit_log: str | None = _opt(None, "Append-only, hash-chained JSONL audit log of every classified text (PII "
                                 "redacted before writing) and alert; `lmkernel audit verify FILE` checks it.")
    audit_fsync: str = _opt("interval", "always | interval | never: fsync the audit log after every line, at most "
                            "once a second (a crash can lose the last second), or never (the OS decides).")

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
        if self.audit_fsync not in ("always", "interval", "never"):
            raise LmkError(f"--audit-fsync {self.audit_fsync!r} is not known", where="--audit-fsync",
                           fix="use always, interval or never")
        if self.webhook is not None:
            from ..trust.webhook import check_url

            check_url(self.webhook)


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
