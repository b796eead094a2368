"""Host and Origin checks, the API-key failure limit, key-file comments, texts with nothing visible, logprobs."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from serve_helpers import FakePredictor, serving, wait_ready

from lmkernel.errors import LmkError
from lmkernel.serve.app import create_app
from lmkernel.serve.generation.schemas import ChatCompletionRequest, CompletionRequest
from lmkernel.serve.guards import default_allowed_hosts, host_name
from lmkernel.serve.http_errors import ApiError
from lmkernel.serve.limits import parse_body
from lmkernel.serve.settings import ServeSettings, read_api_keys, split_list

LOCAL = default_allowed_hosts("127.0.0.1")
BODY = {"texts": ["great film"]}


@contextlib.contextmanager
def local(base: str = "http://localhost:8000", **settings: Any) -> Iterator[TestClient]:
    """A ready app whose client calls it ``base`` (TestClient's own name, testserver, is not a local one)."""
    app = create_app(ServeSettings(**settings), task="classification", load=FakePredictor)
    with TestClient(app, base_url=base) as client:
        wait_ready(client)
        yield client


def test_host_names_a_server_answers_follow_its_bind_address():
    assert set(LOCAL) == {"localhost", "127.0.0.1", "::1"}
    assert "myhost" in default_allowed_hosts("myhost")
    assert default_allowed_hosts("0.0.0.0") is None and default_allowed_hosts("::") is None
    assert [host_name(h) for h in ("LocalHost:8000", "[::1]:80", "::1", "example.com.", "127.0.0.1")] == [
        "localhost", "::1", "::1", "example.com", "127.0.0.1"]


def test_foreign_host_headers_are_refused_dns_rebinding():
    with local(allowed_hosts=LOCAL) as client:
        for host in ("localhost:8000", "127.0.0.1:1234", "[::1]:8000", "localhost"):
            assert client.post("/v1/classify", json=BODY, headers={"Host": host}).status_code == 200, host
        r = client.post("/v1/classify", json=BODY, headers={"Host": "attacker.example:8000"})
        assert r.status_code == 400 and r.json()["error"]["param"] == "Host" and "--allowed-hosts" in r.text
        assert client.get("/healthz", headers={"Host": "attacker.example"}).status_code == 400
    with serving(FakePredictor, allowed_hosts=("*",)) as client:
        assert client.post("/v1/classify", json=BODY, headers={"Host": "anything.example"}).status_code == 200
    with local("http://api.example.com", allowed_hosts=("api.example.com",)) as client:
        assert client.post("/v1/classify", json=BODY, headers={"Host": "API.example.com:443"}).status_code == 200
        assert client.post("/v1/classify", json=BODY, headers={"Host": "localhost"}).status_code == 400


def test_cross_site_browser_posts_are_refused_but_curl_and_same_origin_work():
    with local(allowed_hosts=LOCAL) as client:
        here = {"Host": "localhost:8000"}
        assert client.post("/v1/classify", content=b'{"texts": ["a"]}', headers=here).status_code == 200  # curl -d
        same = client.post("/v1/classify", json=BODY, headers={**here, "Origin": "http://localhost:8000"})
        assert same.status_code == 200
        for origin in ("https://evil.example", "null", "http://localhost:9999"):
            r = client.post("/v1/classify", json=BODY, headers={**here, "Origin": origin})
            assert r.status_code == 403 and "--allowed-origins" in r.json()["error"]["message"], origin
        # a GET reads nothing a browser could see without CORS, and changes nothing
        assert client.get("/healthz", headers={**here, "Origin": "https://evil.example"}).status_code == 200
    with serving(FakePredictor, allowed_origins=("https://app.example/",)) as client:
        assert client.post("/v1/classify", json=BODY, headers={"Origin": "https://app.example"}).status_code == 200
        assert client.post("/v1/classify", json=BODY, headers={"Origin": "https://b.example"}).status_code == 403


def test_wrong_api_keys_are_limited_per_address():
    with serving(FakePredictor, api_keys=frozenset({"right"}), max_auth_failures=3) as client:
        ok = {"Authorization": "Bearer right"}
        assert client.post("/v1/classify", json=BODY, headers=ok).status_code == 200
        codes = [client.post("/v1/classify", json=BODY, headers={"Authorization": f"Bearer guess{i}"}).status_code
                 for i in range(5)]
        assert codes == [401, 401, 401, 429, 429]
        blocked = client.post("/v1/classify", json=BODY, headers=ok)  # a guess that is right is not let through
        assert blocked.status_code == 429 and int(blocked.headers["retry-after"]) >= 1
        assert "API key" in blocked.json()["error"]["message"]
        assert client.get("/v1/models").status_code == 429  # no header at all is a failure too


def test_key_file_comments_need_a_space_or_line_start(tmp_path):
    f = tmp_path / "keys.txt"
    f.write_text("# team keys\nabc#def\n  spaced # a comment\nlast#\n\t# indented comment\n", encoding="utf-8")
    assert read_api_keys(key_file=str(f)) == {"abc#def", "spaced", "last#"}


def test_flag_lists_and_proxy_addresses_are_checked():
    assert split_list(" a, b,,c ") == ("a", "b", "c") and split_list(None) == ()
    ServeSettings(trusted_proxies=("10.0.0.1", "10.1.0.0/16", "::1"))
    with pytest.raises(LmkError, match="--trusted-proxies: 'proxy.local' is not an IP address"):
        ServeSettings(trusted_proxies=("proxy.local",))
    for name in ("header_timeout_s", "body_timeout_s", "max_header_bytes", "max_connections", "max_auth_failures"):
        with pytest.raises(LmkError, match="must be positive"):
            ServeSettings(**{name: 0})
    with pytest.raises(LmkError, match="--drain-s must be 0 or more"):
        ServeSettings(drain_s=-1)


@pytest.mark.parametrize("text", ["\u0000", "\u200b", " \u200b\t\u2060", "\ufeff", "\u3164", "\x7f\x1b"])
def test_texts_with_nothing_visible_are_empty(tiny_client: TestClient, text):
    r = tiny_client.post("/v1/classify", json={"texts": ["fine", text]})
    assert r.status_code == 422 and r.json()["error"]["param"] == "texts[1]" and "visible" in r.text


def test_texts_with_something_visible_are_served(tiny_client: TestClient):
    r = tiny_client.post("/v1/classify", json={"texts": ["a\u200b", "\u200b😀", "é", "中"]})
    assert r.status_code == 200 and len(r.json()["results"]) == 4


def test_logprobs_false_is_accepted_and_true_is_refused_clearly():
    chat = b'{"messages": [{"role": "user", "content": "hi"}], "logprobs": %s}'
    for value in (b"false", b"null"):
        assert parse_body(chat % value, ChatCompletionRequest).logprobs in (False, None)
    assert parse_body(b'{"prompt": "hi", "logprobs": 0}', CompletionRequest).logprobs == 0
    refused = ((chat % b"true", ChatCompletionRequest), (b'{"prompt": "hi", "logprobs": 3}', CompletionRequest))
    for raw, model in refused:
        with pytest.raises(ApiError) as e:
            parse_body(raw, model)
        assert e.value.status == 422 and "log probabilities" in e.value.message and "logprobs: false" in e.value.message
