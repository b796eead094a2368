"""The official `openai` client, unchanged, against a live loopback server; and a client that leaves mid-stream."""

from __future__ import annotations

import time

import httpx
import pytest
from serve_helpers import live_server

from lmkernel.serve.app import create_app
from lmkernel.serve.generation.predictor import GenerationPredictor
from lmkernel.serve.settings import ServeSettings

openai = pytest.importorskip("openai")


@pytest.fixture(scope="module")
def chat_app(chat_model):
    return create_app(ServeSettings(max_new_tokens=200, api_keys=frozenset({"sk-test"})), task="chat",
                      load=lambda: GenerationPredictor(chat_model))


@pytest.fixture(scope="module")
def base_url(chat_app):
    with live_server(chat_app) as url:
        yield url


@pytest.fixture(scope="module")
def client(base_url):
    return openai.OpenAI(base_url=f"{base_url}/v1", api_key="sk-test", max_retries=0, timeout=60)


def test_openai_chat_completion_and_stream(client):
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello how are you"}]
    whole = client.chat.completions.create(model="tiny-chat", messages=messages, max_tokens=6, temperature=0)
    assert whole.object == "chat.completion" and whole.model == "tiny-chat"
    assert whole.choices[0].finish_reason == "length" and whole.usage.completion_tokens == 6
    assert whole.usage.total_tokens == whole.usage.prompt_tokens + 6

    stream = client.chat.completions.create(model="tiny-chat", messages=messages, max_tokens=6, temperature=0,
                                            stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    assert chunks[-1].usage.completion_tokens == 6


def test_openai_completions_extra_body_and_models(client):
    done = client.completions.create(model="tiny-chat", prompt="the cat sat", max_tokens=5, temperature=0,
                                     extra_body={"top_k": 5, "repetition_penalty": 1.3})
    assert done.object == "text_completion" and done.usage.completion_tokens == 5
    streamed = "".join(c.choices[0].text for c in client.completions.create(
        model="tiny-chat", prompt="the cat sat", max_tokens=5, temperature=0, stream=True,
        extra_body={"top_k": 5, "repetition_penalty": 1.3}))
    assert streamed == done.choices[0].text
    assert [m.id for m in client.models.list()] == ["tiny-chat"]


def test_openai_errors_surface_as_client_exceptions(client, base_url):
    with pytest.raises(openai.UnprocessableEntityError) as e:
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}], max_tokens=10_000)
    assert e.value.status_code == 422 and "--max-new-tokens" in str(e.value)
    bad = openai.OpenAI(base_url=f"{base_url}/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.completions.create(model="m", prompt="x", max_tokens=1)


@pytest.fixture()
def slow_steps(chat_app):
    """10 ms per decode step, so that 200 tokens outlast the client for sure."""
    engine = chat_app.state.service.engine
    fast = engine._on_step
    engine._on_step = lambda *a: (time.sleep(0.01), fast(*a))
    yield engine
    engine._on_step = fast


def test_client_leaving_a_stream_frees_its_slot(slow_steps, base_url):
    engine = slow_steps
    body = {"prompt": "hello", "max_tokens": 200, "temperature": 0, "stream": True}
    engine.trace = []
    with httpx.Client(base_url=base_url, timeout=30, headers={"Authorization": "Bearer sk-test"}) as http:
        with http.stream("POST", "/v1/completions", json=body) as r:
            assert r.status_code == 200
            lines = r.iter_lines()
            assert next(lines).startswith("data: ")
        # the connection is closed here, with most of the 200 tokens still to come
        deadline = time.monotonic() + 30
        while engine.running and time.monotonic() < deadline:
            time.sleep(0.01)
        assert engine.running == 0
        left_after = len(engine.trace)
        assert left_after < 190  # stopped long before max_tokens
        r = http.post("/v1/completions", json={**body, "stream": False, "max_tokens": 3})
        assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] == 3

    non_stream = {**body, "stream": False}
    with httpx.Client(base_url=base_url, timeout=0.3, headers={"Authorization": "Bearer sk-test"}) as http:
        engine.trace = []
        with pytest.raises(httpx.ReadTimeout):  # the client gives up on a long non-streamed completion
            http.post("/v1/completions", json=non_stream)
    deadline = time.monotonic() + 30
    while engine.running and time.monotonic() < deadline:
        time.sleep(0.01)
    assert engine.running == 0 and len(engine.trace) < 190
