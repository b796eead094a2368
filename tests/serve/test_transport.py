"""The connection layer under a real uvicorn (transport.py, server.build_server): header and body deadlines,
header size and connection caps, a 413 every client reads, forwarded headers, the shutdown drain."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.responses import StreamingResponse
from serve_helpers import FakePredictor, wait_ready

from lmkernel.serve.app import create_app
from lmkernel.serve.server import RedactQuery, build_server
from lmkernel.serve.settings import ServeSettings

HANG = 20.0  # socket timeout: only a server that never answers gets near it


@contextlib.contextmanager
def running(app_or_settings: Any = None, **settings: Any) -> Iterator[tuple[str, int, Any]]:
    """A real uvicorn on a free loopback port (build_server: our protocol and limits), in a thread."""
    app = app_or_settings or create_app(ServeSettings(**settings), task="classification", load=FakePredictor)
    s = app.state.service.settings
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = build_server(app, host="127.0.0.1", port=port, settings=s, log_level="warning")
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
            wait_ready(client)
        yield "127.0.0.1", port, server
    finally:
        server.should_exit = True
        thread.join(30)


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=HANG)
    return sock


def read_all(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    out = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(65536):
            out += chunk
    return out


def status_of(raw: bytes) -> int:
    return int(raw.split(b" ", 2)[1]) if raw.startswith(b"HTTP/1.1 ") else 0


def test_idle_and_slow_header_connections_are_closed():
    with running(header_timeout_s=0.3) as (_, port, _):
        idle = connect(port)
        assert read_all(idle) == b""  # closed without a word: nothing was asked
        slow = connect(port)
        slow.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n")  # and never the blank line
        raw = read_all(slow)
        assert status_of(raw) == 408 and b"--header-timeout-s" in raw
        with connect(port) as ok:  # a prompt client is served as before
            ok.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            assert status_of(read_all(ok)) == 200


def test_a_body_that_stops_arriving_gets_408():
    with running(body_timeout_s=0.3) as (_, port, _):
        with connect(port) as sock:
            sock.sendall(b"POST /v1/classify HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\n{\"texts\"")
            raw = read_all(sock)
    assert status_of(raw) == 408 and b"--body-timeout-s" in raw


@pytest.mark.parametrize("size", [100_000, 8 * 1024 * 1024])
def test_oversized_headers_get_431(size):
    with running() as (_, port, _):  # the default --max-header-bytes
        with connect(port) as sock:
            head = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Big: " + b"a" * size + b"\r\n\r\n"
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                sock.sendall(head)
            raw = read_all(sock)
    assert status_of(raw) == 431 and b"--max-header-bytes" in raw


def test_connections_past_the_cap_get_503_until_some_close():
    with running(max_connections=2) as (_, port, _):
        held = [connect(port), connect(port)]
        time.sleep(0.2)  # let the server accept both before the third connects (the order, not a timing check)
        with connect(port) as third:
            third.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
            raw = read_all(third)
        assert status_of(raw) == 503 and b"--max-connections" in raw and b"retry-after: 1" in raw.lower()
        for sock in held:
            sock.close()
        deadline = time.monotonic() + HANG
        while True:  # the server notices the two closes
            with connect(port) as again:
                again.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                if status_of(read_all(again)) == 200 or time.monotonic() > deadline:
                    break
        assert time.monotonic() <= deadline, "the cap never let a connection in again"


def test_413_reaches_every_client_still_sending_its_body():
    """urllib sends Connection: close and the whole body before reading; the server answers 413 early and must
    not reset the connection under it (issue 21 item 11)."""
    with running(max_body_bytes=1000) as (_, port, _):
        body = json.dumps({"texts": ["word " * 400_000]}).encode()  # 2 MB
        for _ in range(10):
            req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/classify", data=body,
                                         headers={"Content-Type": "application/json"})
            with pytest.raises(urllib.error.HTTPError) as e:
                urllib.request.urlopen(req, timeout=HANG)
            assert e.value.code == 413 and "--max-body-bytes" in e.value.read().decode()
        for chunked in (False, True):  # by Content-Length, and while streaming a chunked body
            for _ in range(10):
                with connect(port) as sock:
                    framing = b"Transfer-Encoding: chunked" if chunked else b"Content-Length: %d" % len(body)
                    sock.sendall(b"POST /v1/classify HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
                                 + framing + b"\r\n\r\n")
                    for i in range(0, len(body), 65536):
                        part = body[i:i + 65536]
                        sock.sendall(b"%x\r\n%s\r\n" % (len(part), part) if chunked else part)
                    if chunked:
                        sock.sendall(b"0\r\n\r\n")
                    raw = read_all(sock)
                assert status_of(raw) == 413, raw[:200]


def test_forwarded_for_counts_only_from_trusted_proxies():
    spoofed = [{"X-Forwarded-For": f"10.0.0.{i}"} for i in range(4)]
    with running(rate_limit="2/min") as (_, port, _):
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
            codes = [client.post("/v1/classify", json={"texts": ["a"]}, headers=h).status_code for h in spoofed]
    assert codes == [200, 200, 429, 429]  # one client, whatever it claims
    with running(rate_limit="2/min", trusted_proxies=("127.0.0.1",)) as (_, port, _):
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
            codes = [client.post("/v1/classify", json={"texts": ["a"]}, headers=h).status_code for h in spoofed]
    assert codes == [200] * 4  # behind a trusted proxy each forwarded address is its own client


def test_access_log_redacts_query_strings():
    record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
                               ("127.0.0.1:5", "GET", "/v1/models?api_key=secret", "1.1", 401), None)
    RedactQuery().filter(record)
    assert "secret" not in record.getMessage() and "/v1/models?…" in record.getMessage()


def _slow_app(drain_s: float):
    """The classification app plus two routes that never finish on their own: an SSE stream and a JSON answer."""
    app = create_app(ServeSettings(drain_s=drain_s), task="classification", load=FakePredictor)
    started = threading.Event()

    async def stream() -> StreamingResponse:
        async def events():
            yield "data: {\"text\": \"a\"}\n\n"
            started.set()
            while True:
                await asyncio.sleep(0.05)
                yield "data: {\"text\": \"b\"}\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    async def forever() -> dict:
        started.set()
        await asyncio.Event().wait()
        return {}

    app.add_api_route("/slow-stream", stream, methods=["POST"])
    app.add_api_route("/slow-json", forever, methods=["POST"])
    return app, started


@pytest.mark.parametrize("path", ["/slow-stream", "/slow-json"])
def test_shutdown_ends_requests_still_running_after_the_drain(path):
    """SIGTERM (should_exit) with a request that would run forever: after --drain-s it ends with an error the
    client can read (an SSE error event, or 503), not a cut connection (issue 21 item 8)."""
    app, started = _slow_app(drain_s=0.5)
    out: dict[str, Any] = {}
    with running(app) as (_, port, server):
        def client() -> None:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=HANG) as c:
                with c.stream("POST", path) as r:
                    out["status"] = r.status_code
                    out["body"] = r.read().decode()  # raises if the connection is cut mid-body

        t = threading.Thread(target=client)
        t.start()
        assert started.wait(HANG)
        server.should_exit = True
        t.join(HANG)
    assert not t.is_alive()
    if path == "/slow-stream":
        assert out["status"] == 200 and out["body"].startswith('data: {"text": "a"}')
        last = out["body"].strip().split("\n\n")[-1]
        assert last.startswith("data: ") and "--drain-s" in json.loads(last[6:])["error"]["message"]
    else:
        assert out["status"] == 503 and "--drain-s" in json.loads(out["body"])["error"]["message"]


def test_a_stream_that_ends_within_the_drain_finishes():
    app = create_app(ServeSettings(drain_s=30), task="classification", load=FakePredictor)
    release = threading.Event()
    started = threading.Event()

    async def stream() -> StreamingResponse:
        async def events():
            yield "data: 1\n\n"
            started.set()
            while not release.is_set():
                await asyncio.sleep(0.02)
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    app.add_api_route("/s", stream, methods=["POST"])
    out: dict[str, str] = {}
    with running(app) as (_, port, server):
        def client() -> None:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=HANG) as c:
                out["body"] = c.post("/s").text

        t = threading.Thread(target=client)
        t.start()
        assert started.wait(HANG)
        server.should_exit = True
        time.sleep(0.3)  # shutdown has begun (ordering only)
        release.set()
        t.join(HANG)
    assert out["body"] == "data: 1\n\ndata: [DONE]\n\n"


def test_an_oversized_head_completed_in_its_last_read_is_refused_before_parsing():
    """A head whose last read completes it past the limit must still get 431: counted before the parser
    runs, since a parser that finished the head would hand the request to the app first (the first read
    alone stays under the limit, as on a loaded machine that delivers the rest in one piece)."""
    import asyncio

    import uvicorn
    from uvicorn.server import ServerState

    from lmkernel.serve.transport import TransportLimits, protocol_for

    async def app(scope, receive, send):  # never reached
        raise AssertionError("the app ran for an oversized head")

    class Transport(asyncio.Transport):
        def __init__(self):
            super().__init__()
            self.out, self.closing = b"", False

        def write(self, data):
            self.out += data

        def is_closing(self):
            return self.closing

        def close(self):
            self.closing = True

        def get_extra_info(self, name, default=None):
            return {"peername": ("127.0.0.1", 5000), "sockname": ("127.0.0.1", 8000)}.get(name, default)

        def pause_reading(self):
            pass

        def resume_reading(self):
            pass

        def can_write_eof(self):
            return False

    loop = asyncio.new_event_loop()
    try:
        config = uvicorn.Config(app, log_level="warning")
        config.load()
        protocol = protocol_for(TransportLimits(10.0, 30.0, 64 * 1024, 256))(config, ServerState(), {}, loop)
        transport = Transport()
        protocol.connection_made(transport)
        head = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n"
        protocol.data_received(head[:60_000])
        assert transport.out == b""  # under the limit so far
        protocol.data_received(head[60_000:])
        assert transport.out.startswith(b"HTTP/1.1 431") and b"--max-header-bytes" in transport.out
    finally:
        loop.close()
