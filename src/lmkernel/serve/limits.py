"""What a client may send: API keys, a request rate, body size, and a body that parses.

Each check raises ``ApiError`` with the status a client can act on: 401 (no or wrong key), 429
with Retry-After (too fast), 413 (too big), 422 naming the field (not UTF-8, not JSON, wrong
types). The body is read and parsed here rather than by FastAPI so that ``curl -d`` (which says
``application/x-www-form-urlencoded``) works, invalid UTF-8 is a 422 instead of FastAPI's 400,
and an oversized body is cut off after ``max_body_bytes`` instead of being buffered whole.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import threading
import time
from typing import TypeVar

from fastapi import Request
from pydantic import BaseModel, ValidationError
from starlette.requests import ClientDisconnect

from .http_errors import ApiError, validation_error

M = TypeVar("M", bound=BaseModel)


class ApiKeys:
    """Bearer-key check; an empty key set means the server is open."""

    def __init__(self, keys: frozenset[str]):
        # compare digests, so the time a comparison takes says nothing about a key's prefix
        self._digests = [hashlib.sha256(k.encode()).digest() for k in keys]

    @property
    def required(self) -> bool:
        return bool(self._digests)

    def caller(self, request: Request, failures: RateLimiter | None = None) -> str:
        """An identity for rate limiting: a key's short hash, or the client address when open.

        ``failures`` counts missing and wrong keys per client address; once an address has used up
        its allowance, its requests get 429 before their key is looked at, so keys cannot be guessed
        at speed.

        Raises:
            ApiError: 401 when keys are required and the header is missing or wrong; 429 with
                Retry-After when the address sent too many of those.
        """
        address = request.client.host if request.client else "unknown"
        if not self._digests:
            return "addr:" + address
        if failures is not None and (wait := failures.wait(address)):
            raise ApiError(429, f"too many requests with a missing or wrong API key from this address; retry "
                           f"after {wait}s", param="Authorization", headers={"Retry-After": str(wait)})
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        challenge = {"WWW-Authenticate": "Bearer"}
        if scheme.lower() != "bearer" or not token.strip():
            if failures is not None:
                failures.spend(address)
            raise ApiError(401, "missing API key: send the header 'Authorization: Bearer <key>'",
                           param="Authorization", headers=challenge)
        digest = hashlib.sha256(token.strip().encode("utf-8", "surrogateescape")).digest()
        if not any(hmac.compare_digest(digest, d) for d in self._digests):
            if failures is not None:
                failures.spend(address)
            raise ApiError(401, "invalid API key", param="Authorization", headers=challenge)
        return "key:" + digest.hex()[:12]


class RateLimiter:
    """A token bucket per caller: ``rate`` requests per second, bursts up to a minute's worth."""

    def __init__(self, rate: float, max_callers: int = 100_000):
        self.rate = rate
        self.burst = max(1.0, rate * 60)
        self._buckets: dict[str, tuple[float, float]] = {}  # caller -> (tokens, last refill time)
        self._lock = threading.Lock()
        self._max_callers = max_callers

    def _tokens(self, caller: str, now: float) -> float:
        if len(self._buckets) >= self._max_callers and caller not in self._buckets:
            self._buckets.clear()  # bounded memory against address churn; callers merely get a fresh bucket
        tokens, last = self._buckets.get(caller, (self.burst, now))
        return min(self.burst, tokens + (now - last) * self.rate)

    def check(self, caller: str) -> None:
        """Take one token for the caller.

        Raises:
            ApiError: 429 with Retry-After (seconds until a token is back) when the bucket is empty.
        """
        now = time.monotonic()
        with self._lock:
            tokens = self._tokens(caller, now)
            if tokens < 1:
                self._buckets[caller] = (tokens, now)
                wait = math.ceil((1 - tokens) / self.rate)
                raise ApiError(429, f"rate limit exceeded; retry after {wait}s",
                               headers={"Retry-After": str(wait)})
            self._buckets[caller] = (tokens - 1, now)

    def wait(self, caller: str) -> int:
        """Seconds until the caller has a token again (0: it has one); takes none."""
        with self._lock:
            tokens = self._tokens(caller, time.monotonic())
        return 0 if tokens >= 1 else math.ceil((1 - tokens) / self.rate)

    def spend(self, caller: str) -> None:
        """Take a token if the caller has one (a failure to count, not a request to refuse)."""
        now = time.monotonic()
        with self._lock:
            self._buckets[caller] = (max(0.0, self._tokens(caller, now) - 1), now)


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, refusing more than ``limit`` bytes (by Content-Length, or while streaming).

    Raises:
        ApiError: 413 past the limit; 499 when the client disconnects mid-body.
    """
    too_big = ApiError(413, f"request body is larger than {limit} bytes (server limit --max-body-bytes)",
                       param="body")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_big
    chunks, size = [], 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise too_big
            chunks.append(chunk)
    except ClientDisconnect as e:  # gone mid-body: nobody to answer, but no 500 in the log or metrics
        raise ApiError(499, "client closed the connection before sending the whole body", param="body") from e
    return b"".join(chunks)


def parse_body(raw: bytes, model: type[M]) -> M:
    """Decode UTF-8, parse JSON, validate against ``model``.

    Raises:
        ApiError: 422 saying which of the three failed and where (byte offset, line and column, field).
    """
    if not raw.strip():
        raise ApiError(422, f"empty body: send a JSON object like {_example(model)}", param="body")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ApiError(422, f"body is not valid UTF-8 (byte {e.start})", param="body") from e
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ApiError(422, f"body is not valid JSON: {e.msg} (line {e.lineno}, column {e.colno})",
                       param="body") from e
    except ValueError as e:  # e.g. an integer literal of more than 4300 digits
        raise ApiError(422, f"body is not valid JSON: {e}", param="body") from e
    except RecursionError as e:  # [[[[...]]]] a hundred thousand levels deep
        raise ApiError(422, "body is not valid JSON: nested too deeply", param="body") from e
    if not isinstance(data, dict):
        raise ApiError(422, f"body must be a JSON object like {_example(model)}, got {type(data).__name__}",
                       param="body")
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise validation_error(e.errors(include_url=False)) from e


def _example(model: type[BaseModel]) -> str:
    examples = model.model_config.get("json_schema_extra", {}) or {}
    found = examples.get("examples") if isinstance(examples, dict) else None
    return json.dumps(found[0], ensure_ascii=False) if found else "{...}"
