"""The HTTP connection layer under the app: uvicorn's httptools protocol plus the limits it lacks.

uvicorn keeps a connection that sends nothing (or a header a byte at a time) open for good, takes
headers of any size and waits for a body forever. Here: the request line and headers must arrive
within ``--header-timeout-s`` of the connection opening or of the previous response (else the
connection closes; 408 if part of a request came) and fit in ``--max-header-bytes`` (431); a body
must arrive within ``--body-timeout-s`` (408); past ``--max-connections`` open connections a request
gets 503. An answer that ends the connection while the client is still sending its body (413, 431,
``Connection: close`` clients) is followed by a lingering close: the rest of the request is read and
dropped (up to ``LINGER_BYTES``, within ``--body-timeout-s``), so that the client's kernel does not
reset the connection before the client has read the answer.

uvicorn's own knobs do not cover this: ``timeout_keep_alive`` only runs between requests and stops at
the first byte, ``h11_max_incomplete_event_size`` applies to the slower h11 parser only (and answers
400), and ``limit_concurrency`` counts running tasks as well as connections and answers in plain text.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from .http_errors import ApiError
from .settings import ServeSettings

LINGER_BYTES = 16 * 1024 * 1024  # request bytes read and dropped after an early answer before closing anyway


@dataclass(frozen=True)
class TransportLimits:
    header_timeout_s: float
    body_timeout_s: float
    max_header_bytes: int
    max_connections: int

    @classmethod
    def of(cls, s: ServeSettings) -> TransportLimits:
        return cls(s.header_timeout_s, s.body_timeout_s, s.max_header_bytes, s.max_connections)


def protocol_for(limits: TransportLimits) -> type[asyncio.Protocol]:
    """The protocol class to hand uvicorn (``Config(http=...)``), bound to ``limits``."""
    return type("LmkHttpProtocol", (LmkHttpProtocol,), {"limits": limits})


def error_bytes(err: ApiError, default_headers: list[tuple[bytes, bytes]] | None = None) -> bytes:
    """A whole ``Connection: close`` HTTP/1.1 response carrying ``err`` in the app's error shape."""
    body = json.dumps({"error": {"message": err.message, "type": err.type, "param": err.param}}).encode()
    headers = [*(default_headers or []), (b"content-type", b"application/json"),
               (b"content-length", str(len(body)).encode()), (b"connection", b"close"),
               *((k.lower().encode(), v.encode()) for k, v in (err.headers or {}).items())]
    return STATUS_LINE[err.status] + b"".join(k + b": " + v + b"\r\n" for k, v in headers) + b"\r\n" + body


class _CycleTransport:
    """The transport as one request/response cycle sees it: closing lingers while its body still arrives."""

    def __init__(self, protocol: LmkHttpProtocol):
        self._protocol = protocol
        self._transport = protocol.transport

    def write(self, data: bytes) -> None:
        self._transport.write(data)

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def close(self) -> None:
        self._protocol.close_after_answer()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class LmkHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with header and body deadlines, a header size cap, a connection cap."""

    limits: ClassVar[TransportLimits]

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._timer: asyncio.TimerHandle | None = None  # the header or the body deadline
        self._in_head = True  # between requests or reading a request line and headers
        self._partial = False  # some of the next request has arrived
        self._in_body = False  # headers read, body not complete
        self._head_bytes = 0
        self._discard: int | None = None  # lingering: bytes still to read and drop before closing

    # ---------------------------------------------------------------- connection

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            self.app = _over_capacity(self.limits.max_connections)  # this connection's requests only
        self._arm(self.limits.header_timeout_s, self._header_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._discard is not None:
            self._discard -= len(data)
            if self._discard < 0:
                self.transport.close()
            return
        if self._in_head and not self.transport.is_closing():
            # counted before the parser sees the bytes: a whole oversized head can arrive in one read, and
            # the parser would have finished it (and the app answered it) before a check after parsing
            end = data.find(b"\r\n\r\n")
            self._head_bytes += len(data) if end < 0 else end + 4
            if self._head_bytes > self.limits.max_header_bytes:
                self._answer(ApiError(431, f"request line and headers are larger than "
                                      f"{self.limits.max_header_bytes} bytes (server limit --max-header-bytes)",
                                      param="headers"))
                return
        super().data_received(data)

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to a request it cannot parse, in the app's error shape and with a lingering close."""
        self.logger.debug("invalid HTTP request from %s", self.client)
        self._answer(ApiError(400, "invalid HTTP request (not HTTP/1.1 as the parser reads it)", param="request"))

    # ---------------------------------------------------------------- parser callbacks

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._partial = True
        if self._timer is None:  # a pipelined request: its headers get their own deadline
            self._arm(self.limits.header_timeout_s, self._header_timeout)

    def on_headers_complete(self) -> None:
        self._in_head, self._partial, self._in_body, self._head_bytes = False, False, True, 0
        super().on_headers_complete()
        if self.cycle is not None:
            self.cycle.transport = _CycleTransport(self)  # type: ignore[assignment]
        self._arm(self.limits.body_timeout_s, self._body_timeout)

    def on_message_complete(self) -> None:
        self._in_head, self._in_body = True, False
        self._disarm()
        super().on_message_complete()

    def on_response_complete(self) -> None:
        if self._discard is not None:  # lingering: no next request on this connection
            self.server_state.total_requests += 1
            return
        super().on_response_complete()
        if self.timeout_keep_alive_task is not None:  # idle now, waiting for the next request
            self._arm(self.limits.header_timeout_s, self._header_timeout)

    # ---------------------------------------------------------------- deadlines and answers

    def _arm(self, seconds: float, callback: Any) -> None:
        self._disarm()
        self._timer = self.loop.call_later(seconds, callback)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _header_timeout(self) -> None:
        self._timer = None
        if not self._in_head or self.transport.is_closing() or self._discard is not None:
            return
        if self.cycle is not None and not self.cycle.response_complete:  # still answering the previous one
            self._arm(self.limits.header_timeout_s, self._header_timeout)
            return
        if not self._partial:
            self.transport.close()  # idle: nothing to answer
            return
        self._answer(ApiError(408, f"request headers did not arrive within {self.limits.header_timeout_s:g}s "
                              "(server limit --header-timeout-s)", param="headers"), linger=False)

    def _body_timeout(self) -> None:
        self._timer = None
        if not self._in_body or self.transport.is_closing():
            return
        if self.cycle is not None and self.cycle.response_started:
            self.transport.close()
            return
        self._answer(ApiError(408, f"request body did not arrive within {self.limits.body_timeout_s:g}s "
                              "(server limit --body-timeout-s)", param="body"), linger=False)

    def _answer(self, err: ApiError, *, linger: bool = True) -> None:
        """Write ``err`` as the connection's last response (the app's cycle, if any, is told it is gone)."""
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.disconnected = True
            self.cycle.message_event.set()
        self.transport.write(error_bytes(err, self.server_state.default_headers))
        if linger:
            self._linger()
        else:
            self.transport.close()

    def close_after_answer(self) -> None:
        """Close once an answer is written: at once when the request was read whole, else lingering."""
        if self._in_body or (self._in_head and self._partial):
            self._linger()
        else:
            self.transport.close()

    def _linger(self) -> None:
        if self.transport.is_closing() or self._discard is not None:
            return
        self._discard = LINGER_BYTES
        self.pipeline.clear()
        self._unset_keepalive_if_required()
        self.flow.resume_reading()
        if self.transport.can_write_eof():
            self.transport.write_eof()  # the answer ends here; the client still gets to finish sending
        self._arm(self.limits.body_timeout_s, self.transport.close)


def _over_capacity(limit: int) -> Any:
    err = ApiError(503, f"server has {limit} open connections already (server limit --max-connections); "
                   "retry later", type_="overloaded", headers={"Retry-After": "1"})

    async def app(scope: Any, receive: Any, send: Any) -> None:
        from .http_errors import error_response

        response = error_response(err)
        response.headers["connection"] = "close"
        await response(scope, receive, send)

    return app
