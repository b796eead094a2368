"""Fuzz the HTTP server: generated bodies against the app in-process, generated raw requests against a real
uvicorn on our protocol (serve/transport.py). Invariant: a 2xx or 4xx answer, never a 5xx, never a hang.

Bodies: random JSON, near-valid bodies with wrong types, huge numbers, unicode, invalid UTF-8, deep nesting,
lying Content-Type and Content-Length headers (tiny BERT classifier, TestClient). Raw requests: random header
names and values, bodies shorter or longer than their Content-Length, garbage request lines (socket).
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from fuzzkit import FAST, SLOW, Tally
from hypothesis import given
from hypothesis import strategies as st

from lmkernel.serve.app import create_app
from lmkernel.serve.server import build_server
from lmkernel.serve.settings import ServeSettings

HANG = 15.0  # seconds without an answer that count as a hang
LIMITS = dict(max_body_bytes=20_000, max_texts=8, body_timeout_s=0.3, header_timeout_s=2.0, max_header_bytes=4096)


@pytest.fixture(scope="module")
def app(tiny_bert, tmp_path_factory):
    """A classification app on the tiny BERT (random head) with small limits, so the fuzzer reaches them."""
    import torch

    import lmkernel
    from lmkernel.artifact import save_artifact
    from lmkernel.models.resolve import load_tokenizer
    from lmkernel.serve.predictor import ClassifierPredictor
    from lmkernel.tasks import get_task

    torch.manual_seed(0)
    labels = ["negative", "positive"]
    run = tmp_path_factory.mktemp("fuzz-http") / "run"
    save_artifact(run / "model", get_task("classification").build_model(tiny_bert, labels),
                  load_tokenizer(tiny_bert), {"task": "classification", "labels": labels,
                                              "base_model": str(tiny_bert), "max_length": 32})
    model = lmkernel.load(run)
    return create_app(ServeSettings(**LIMITS, max_wait_ms=1), task="classification",
                      load=lambda: ClassifierPredictor(model))


@pytest.fixture(scope="module")
def client(app) -> Iterator[TestClient]:
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny batches: one thread, no spinning OpenMP workers beside the event loop
    with TestClient(app, raise_server_exceptions=False) as c:
        deadline = time.monotonic() + 60
        while c.get("/readyz").status_code != 200:
            assert time.monotonic() < deadline, c.get("/readyz").text
            time.sleep(0.02)
        yield c
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def port(app, client) -> Iterator[int]:
    """The same app under a real uvicorn (build_server) in a thread."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    server = build_server(app, host="127.0.0.1", port=free, settings=app.state.service.settings, log_level="error")
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    yield free
    server.should_exit = True
    thread.join(30)


# ---------------------------------------------------------------- strategies

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=12), inner, max_size=6),
    max_leaves=25)
texts = st.one_of(st.text(max_size=60), st.sampled_from(["", " ", "\u0000", "\u200b", "\ud800", "great film",
                                                         "😀" * 30, "a " * 200]))
near_valid = st.tuples(
    st.fixed_dictionaries({"texts": st.one_of(st.lists(texts, max_size=12), json_values)},
                          optional={"truncate": json_values | st.booleans()}),
    st.dictionaries(st.text(max_size=10), json_values, max_size=2),  # unknown keys, sometimes
).map(lambda t: {**t[1], **t[0]})
valid = st.fixed_dictionaries({"texts": st.lists(st.text(st.characters(categories=["L", "N", "P", "S"]), min_size=1,
                                                            max_size=40), min_size=1, max_size=8)},
                              optional={"truncate": st.booleans()})
raw_bodies = st.one_of(
    valid.map(lambda d: json.dumps(d).encode()),
    valid.map(lambda d: json.dumps(d, ensure_ascii=False).encode()),
    near_valid.map(lambda d: json.dumps(d).encode("utf-8", "surrogatepass")),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=3000),  # mostly not UTF-8, not JSON
    st.integers(1, 200_000).map(lambda n: b'{"texts": ["a"], "truncate": ' + b"9" * n + b"}"),  # huge numbers
    st.integers(1, 200_000).map(lambda n: b"[" * n + b"]" * n),  # nested deeply
    st.integers(1, 50_000).map(lambda n: json.dumps({"texts": ["word"] * n}).encode()),  # too many texts/bytes
    st.text(max_size=300).map(lambda t: t.encode("utf-8", "surrogatepass")),
)
content_types = st.sampled_from([None, "application/json", "text/plain", "application/x-www-form-urlencoded",
                                 "multipart/form-data; boundary=x", "application/json; charset=latin-1", "\u00ff"])
paths = st.sampled_from(["/v1/classify"] * 6 + ["/v1/models", "/healthz", "/nope", "/v1/classify/", "/metrics"])
methods = st.sampled_from(["POST"] * 6 + ["GET", "PUT", "DELETE", "PATCH", "OPTIONS"])


@st.composite
def body_cases(draw) -> dict[str, Any]:
    body = draw(raw_bodies)
    headers = {}
    if (ct := draw(content_types)) is not None:
        headers["content-type"] = ct
    if draw(st.booleans()) and draw(st.booleans()):  # a lying Content-Length (the in-process body is whole)
        headers["content-length"] = str(draw(st.integers(0, 10**7)))
    return {"kind": "body", "method": draw(methods), "path": draw(paths), "body": body, "headers": headers}


header_names = st.text(st.characters(codec="latin-1", exclude_characters="\r\n:"), min_size=1, max_size=30)
header_values = st.text(st.characters(codec="latin-1", exclude_characters="\r\n"), max_size=200)


@st.composite
def raw_cases(draw) -> dict[str, Any]:
    body = draw(st.one_of(raw_bodies.filter(lambda b: len(b) < 100_000), st.just(b'{"texts": ["great"]}')))
    declared = draw(st.one_of(st.just(len(body)), st.integers(0, len(body) + 50), st.just(None)))
    extra = draw(st.lists(st.tuples(header_names, header_values), max_size=5))
    line = draw(st.one_of(st.just(b"POST /v1/classify HTTP/1.1"), st.just(b"GET /healthz HTTP/1.1"),
                          st.binary(max_size=40), st.just(b"POST /v1/classify HTTP/1.0"),
                          st.just(b"POST /v1/classify?key=x HTTP/1.1")))
    head = [line, b"Host: localhost"]
    head += [n.encode("latin-1") + b": " + v.encode("latin-1") for n, v in extra]
    if declared is not None:
        head.append(b"Content-Length: %d" % declared)
    head.append(b"Connection: close")
    return {"kind": "raw", "data": b"\r\n".join(head) + b"\r\n\r\n" + body}


# ---------------------------------------------------------------- checks

def _in_process(client: TestClient, case: dict[str, Any]) -> int:
    headers = {k: v.encode("latin-1") for k, v in case["headers"].items()}  # as on the wire: bytes, not ASCII
    return client.request(case["method"], case["path"], content=case["body"], headers=headers).status_code


def _over_socket(port: int, case: dict[str, Any]) -> int:
    """The status of the server's first answer (0: none before it closed)."""
    with socket.create_connection(("127.0.0.1", port), timeout=HANG) as sock:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(case["data"])
        out = b""
        with contextlib.suppress(ConnectionResetError):
            while b"\r\n" not in out and (chunk := sock.recv(4096)):
                out += chunk
    return int(out.split(b" ", 2)[1]) if out.startswith(b"HTTP/1.") else 0


def check(case: dict[str, Any], client: TestClient, port: int | None, tally: Tally) -> None:
    tally.tried += 1
    try:
        status = _in_process(client, case) if case["kind"] == "body" else _over_socket(port, case)
    except (TimeoutError, httpx.TimeoutException) as e:
        tally.failures.append(f"hang ({e!r}) on {str(case)[:300]}")
        return
    if 200 <= status < 300:
        tally.accepted += 1
    elif 400 <= status < 500:
        tally.clear_errors += 1
    elif status == 0 and case["kind"] == "raw" and case["data"].split(b"\r\n", 1)[0].count(b" ") != 2:
        tally.clear_errors += 1  # not a request line at all: closing on it says as much
    else:
        tally.failures.append(f"status {status} on {str(case)[:300]}")


def test_fuzz_http_bodies_fast(client):
    tally = Tally("http")

    @FAST
    @given(body_cases())
    def run(case):
        check(case, client, None, tally)

    run()
    assert not tally.failures, tally.failures[:5]


def test_fuzz_http_raw_requests_fast(client, port):
    tally = Tally("http-raw")

    @FAST
    @given(raw_cases())
    def run(case):
        check(case, client, port, tally)

    run()
    assert not tally.failures, tally.failures[:5]


@pytest.mark.slow
def test_fuzz_http_slow(client, port):
    tally = Tally("http")

    @SLOW
    @given(st.one_of(body_cases(), body_cases(), raw_cases()))
    def run(case):
        check(case, client, port, tally)

    started = time.monotonic()
    run()
    print(f"\n{tally.line()} in {time.monotonic() - started:.0f} s")
    assert not tally.failures, tally.failures[:5]
    assert tally.tried >= 3500
