"""What clients may send: keys, rate, sizes, and a table of bad inputs that must never give a 500."""

from __future__ import annotations

import json

import pytest
from serve_helpers import FakePredictor, serving

from lmkernel.errors import LmkError
from lmkernel.serve.settings import ServeSettings, parse_rate, read_api_keys

LONG = " ".join(["great"] * 100)  # 102 tokens on the tiny model, whose limit is 64

BAD_INPUTS = [  # (body, status, message fragment, param)
    (b"", 422, "empty body: send a JSON object like", "body"),
    (b"{", 422, "body is not valid JSON: Expecting property name", "body"),
    (b'{"texts": ["\xff\xfe great"]}', 422, "body is not valid UTF-8 (byte 12)", "body"),
    (b'[1, 2]', 422, "body must be a JSON object", "body"),
    (b"null", 422, "body must be a JSON object", "body"),
    (b"[" * 100_000 + b"]" * 100_000, 422, "nested too deeply", "body"),
    (b'{"texts": [' + b"9" * 5000 + b"]}", 422, "body is not valid JSON", "body"),
    ({"text": ["great"]}, 422, "texts: Field required", "texts"),
    ({"texts": "great film"}, 422, "texts: Input should be a valid list", "texts"),
    ({"texts": [1, "ok"]}, 422, "texts[0]: Input should be a valid string", "texts[0]"),
    ({"texts": ["ok", None]}, 422, "texts[1]: Input should be a valid string", "texts[1]"),
    ({"texts": []}, 422, "texts: List should have at least 1 item", "texts"),
    ({"texts": ["great", ""]}, 422, "texts[1]: empty text", "texts[1]"),
    ({"texts": ["   "]}, 422, "texts[0]: empty text", "texts[0]"),
    (b'{"texts": ["a\\ud800b"]}', 422, "texts[0]: unpaired surrogate at character 1", "texts[0]"),
    ({"texts": ["great"], "truncate": "yes"}, 422, "truncate: Input should be a valid boolean", "truncate"),
    ({"texts": ["great"], "truncation": True}, 422, "truncation: Extra inputs are not permitted", "truncation"),
    ({"texts": ["great"] * 10_000}, 413, "10000 texts in one request; the limit is 256", "texts"),
    ({"texts": ["great " * 200_000]}, 413, "request body is larger than 1000000 bytes", "body"),
    ({"texts": ["ok", LONG]}, 413, "texts[1] has 102 tokens, more than the limit of 64", "texts[1]"),
]


@pytest.mark.parametrize("body,status,message,param", BAD_INPUTS,
                         ids=[f"{i}-{b[:12] if isinstance(b, bytes) else list(b)}" for i, (b, *_) in
                              enumerate(BAD_INPUTS)])
def test_bad_input_gets_a_clear_4xx(tiny_client, body, status, message, param):
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    r = tiny_client.post("/v1/classify", content=content, headers={"content-type": "application/json"})
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert message in error["message"] and error["param"] == param


def test_truncate_true_accepts_long_texts(tiny_client):
    r = tiny_client.post("/v1/classify", json={"texts": ["ok", LONG], "truncate": True})
    assert r.status_code == 200 and r.json()["usage"]["input_tokens"] == 3 + 64


def test_wrong_method_and_path_use_the_error_shape(tiny_client):
    r = tiny_client.get("/v1/classify")
    assert r.status_code == 405 and r.json()["error"]["type"] == "method_not_allowed"
    r = tiny_client.post("/v2/classify", json={"texts": ["x"]})
    assert r.status_code == 404 and r.json()["error"]["message"] == "Not Found"


def test_api_keys_guard_v1_but_not_probes():
    with serving(FakePredictor, api_keys=frozenset({"k1", "k2"})) as client:
        r = client.post("/v1/classify", json={"texts": ["a"]})
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        assert "Authorization: Bearer" in r.json()["error"]["message"]
        r = client.post("/v1/classify", json={"texts": ["a"]}, headers={"Authorization": "Bearer nope"})
        assert r.status_code == 401 and r.json()["error"]["message"] == "invalid API key"
        assert client.get("/v1/models", headers={"Authorization": "Basic k1"}).status_code == 401
        for key in ("k1", "k2"):
            r = client.post("/v1/classify", json={"texts": ["a"]}, headers={"Authorization": f"Bearer {key}"})
            assert r.status_code == 200
        assert client.get("/v1/models", headers={"Authorization": "Bearer k2"}).status_code == 200
        for probe in ("/healthz", "/readyz", "/metrics"):
            assert client.get(probe).status_code == 200


def test_rate_limit_is_per_key_with_retry_after():
    with serving(FakePredictor, api_keys=frozenset({"a", "b"}), rate_limit="3/min") as client:
        def post(key):
            return client.post("/v1/classify", json={"texts": ["x"]}, headers={"Authorization": f"Bearer {key}"})

        assert [post("a").status_code for _ in range(3)] == [200, 200, 200]
        r = post("a")
        assert r.status_code == 429 and 1 <= int(r.headers["retry-after"]) <= 20
        assert "rate limit" in r.json()["error"]["message"]
        assert post("b").status_code == 200  # another key has its own bucket


@pytest.mark.parametrize("text,per_second", [("600/min", 10), ("10/s", 10), ("7200/hour", 2), ("120", 2)])
def test_parse_rate(text, per_second):
    assert parse_rate(text) == pytest.approx(per_second)


@pytest.mark.parametrize("kwargs,message", [
    ({"rate_limit": "fast"}, "is not a rate"),
    ({"rate_limit": "0/min"}, "is not a rate"),
    ({"max_batch": 0}, "--max-batch must be positive"),
    ({"precision": "fp8"}, "--precision 'fp8' is not known"),
    ({"workers": 0}, "--workers must be positive"),
])
def test_bad_settings_are_refused(kwargs, message):
    with pytest.raises(LmkError, match=message):
        ServeSettings(**kwargs)


def test_worker_layout_splits_the_cores_between_workers(monkeypatch):
    import lmkernel.serve.settings as settings

    monkeypatch.setattr(settings, "inference_threads", lambda: 4)
    assert settings.worker_layout(ServeSettings(), generation=False) == (1, 4)
    assert settings.worker_layout(ServeSettings(workers=2), generation=False) == (2, 2)
    assert settings.worker_layout(ServeSettings(workers=8), generation=False) == (8, 1)
    assert settings.worker_layout(ServeSettings(workers=2, threads=3), generation=False) == (2, 3)
    assert settings.worker_layout(ServeSettings(workers=2), generation=True) == (1, 4)  # decode steps run in order


def test_api_keys_from_env_and_file(tmp_path, monkeypatch):
    monkeypatch.setenv("LMK_KEYS", " k1, k2 ,,")
    assert read_api_keys("LMK_KEYS") == {"k1", "k2"}
    f = tmp_path / "keys"
    f.write_text("# team keys\nk3\n\nk4  # ci\n", encoding="utf-8")
    assert read_api_keys(key_file=str(f)) == {"k3", "k4"}
    monkeypatch.setenv("EMPTY", "")
    with pytest.raises(LmkError, match="no API keys in environment variable EMPTY"):
        read_api_keys("EMPTY")
    with pytest.raises(LmkError, match="cannot read the API key file"):
        read_api_keys(key_file=str(tmp_path / "missing"))
    assert read_api_keys() == frozenset()


def test_client_leaving_mid_body_is_not_a_server_error():
    import asyncio

    from starlette.requests import Request

    from lmkernel.serve.http_errors import ApiError
    from lmkernel.serve.limits import read_body

    async def receive():
        return {"type": "http.disconnect"}

    request = Request({"type": "http", "method": "POST", "headers": []}, receive)
    with pytest.raises(ApiError) as e:
        asyncio.run(read_body(request, 100))
    assert e.value.status == 499
