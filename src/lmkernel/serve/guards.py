"""Checks before a request reaches a route, and the end of requests still running at shutdown.

Host: a web page can point a name it controls at 127.0.0.1 (DNS rebinding) and then read a local
server as its own origin; the browser still sends that name in ``Host``, so a server bound to a
loopback address answers only the names of that address (``localhost``, ``127.0.0.1``, ``::1``,
any port) unless ``--allowed-hosts`` lists others. A server bound to 0.0.0.0 cannot know the names
it is reached by, so it takes any Host unless ``--allowed-hosts`` is given.
Origin: a page on another site can POST to the server with a form or ``fetch(..., {mode:
"no-cors"})`` (the server reads any content type as JSON, so ``curl -d`` works); browsers send
``Origin`` with such requests, so a POST whose Origin is not the server's own (or one of
``--allowed-origins``) is refused with 403. Clients other than browsers send no Origin.
Shutdown: on SIGTERM requests in flight get ``--drain-s`` to finish; then each still running ends
(a stream with an SSE error event, a request not yet answered with 503), so no client is cut off
without a word when uvicorn's graceful timeout would cancel it.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .http_errors import ApiError, error_response

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
ANY_ADDRESS = ("0.0.0.0", "::", "")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def default_allowed_hosts(bind: str) -> tuple[str, ...] | None:
    """The Host names a server bound to ``bind`` answers (None: any, for a wildcard bind)."""
    if bind.strip("[]") in ANY_ADDRESS:
        return None
    return tuple(dict.fromkeys((*LOOPBACK_NAMES, bind.strip("[]").lower())))


def host_name(value: str) -> str:
    """``"[::1]:8000"`` -> ``"::1"``, ``"Example.com.:80"`` -> ``"example.com"``: a Host header without port."""
    value = value.strip().lower()
    if value.startswith("["):
        name = value[1:value.find("]")] if "]" in value else value
    else:
        name = value.rsplit(":", 1)[0] if value.count(":") == 1 else value
    return name.rstrip(".")


def _origin(value: str) -> str:
    parts = urlsplit(value.strip().lower())
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else value.strip().lower()


@dataclass(eq=False)
class _Flight:
    """One request the app is running."""

    task: asyncio.Task
    started: bool = False  # response status sent
    stream: bool = False  # server-sent events
    done: bool = False  # response complete
    stopped: bool = False  # ended by the drain


class Drain:
    """The requests in flight, and ending them ``seconds`` after shutdown began."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.flights: set[_Flight] = set()
        self.over = False
        self._handle: asyncio.TimerHandle | None = None

    def begin(self) -> None:
        """Called on the event loop when the server starts shutting down."""
        if self._handle is None and not self.over:
            self._handle = asyncio.get_running_loop().call_later(self.seconds, self.end_all)

    def end_all(self) -> None:
        self.over = True
        for flight in list(self.flights):
            if not flight.done and not flight.stopped:
                flight.stopped = True
                flight.task.cancel("lmkernel: --drain-s passed")


class GuardMiddleware:
    """Pure ASGI middleware: Host and Origin checks, then the request runs tracked by the drain."""

    def __init__(self, app: ASGIApp, *, hosts: tuple[str, ...] | None, origins: tuple[str, ...], drain: Drain):
        self.app = app
        self.hosts = None if hosts is None or "*" in hosts else frozenset(host_name(h) for h in hosts)
        self.origins = None if "*" in origins else frozenset(_origin(o) for o in origins)
        self.drain = drain

    def refusal(self, scope: Scope) -> ApiError | None:
        """Why the request must not run (400 Host, 403 Origin), or None."""
        host = origin = None
        for name, value in scope["headers"]:
            if name == b"host":
                host = value.decode("latin-1")
            elif name == b"origin":
                origin = value.decode("latin-1")
        if self.hosts is not None and host is not None and host_name(host) not in self.hosts:
            return ApiError(400, f"Host {host!r} is not served here (DNS rebinding protection); start the server "
                            "with --allowed-hosts NAME to serve it", param="Host")
        if origin is None or scope["method"] in SAFE_METHODS or self.origins is None:
            return None
        own = f"{scope.get('scheme', 'http')}://{(host or '').strip().lower()}"
        if _origin(origin) == own or _origin(origin) in self.origins:
            return None
        return ApiError(403, f"cross-site request from Origin {origin!r} refused; start the server with "
                        "--allowed-origins ORIGIN to accept it", param="Origin")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refused = self.refusal(scope)
        if refused is None and self.drain.over:
            refused = ApiError(503, "server is shutting down", headers={"Retry-After": "1"})
        if refused is not None:
            await error_response(refused)(scope, receive, send)
            return
        task = asyncio.current_task()
        assert task is not None
        flight = _Flight(task)

        async def tracked(message: Message) -> None:
            if message["type"] == "http.response.start":
                flight.started = True
                flight.stream = any(k == b"content-type" and v.startswith(b"text/event-stream")
                                    for k, v in message.get("headers", ()))
            elif not message.get("more_body", False):
                flight.done = True
            await send(message)

        self.drain.flights.add(flight)
        try:
            await self.app(scope, receive, tracked)
        except asyncio.CancelledError:
            if not flight.stopped:
                raise
            task.uncancel()
            await self._end(flight, scope, receive, send)
        finally:
            self.drain.flights.discard(flight)

    async def _end(self, flight: _Flight, scope: Scope, receive: Receive, send: Send) -> None:
        """Finish a request the drain stopped: an SSE error event, or a 503 when nothing was sent yet."""
        message = (f"server is shutting down and the request did not finish within {self.drain.seconds:g}s "
                   "(server --drain-s); retry")
        if not flight.started:
            response = error_response(ApiError(503, message, headers={"Retry-After": "1"}))
            response.headers["connection"] = "close"
            await response(scope, receive, send)
        elif flight.stream and not flight.done:
            event = {"error": {"message": message, "type": "unavailable", "param": None}}
            await send({"type": "http.response.body", "body": f"data: {json.dumps(event)}\n\n".encode(),
                        "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
