"""Generation endpoints on the tiny chat artifact: /v1/generate, OpenAI chat/completions, streaming, limits."""

from __future__ import annotations

import asyncio
import json
import re

import pytest
import torch
from serve_helpers import async_serving, chat_serving

from lmkernel.serve.app import create_app
from lmkernel.serve.generation.predictor import GenerationPredictor
from lmkernel.serve.settings import ServeSettings

CHAT = [{"role": "user", "content": "hello how are you"}]


def events(text: str) -> list:
    """SSE body -> the JSON of each ``data:`` event, ``"[DONE]"`` kept as is."""
    assert text.endswith("data: [DONE]\n\n"), text[-200:]
    out = []
    for block in text.strip().split("\n\n"):
        assert block.startswith("data: "), block
        payload = block.removeprefix("data: ")
        out.append(payload if payload == "[DONE]" else json.loads(payload))
    return out


def reference(chat_model, ids: list[int], n: int) -> str:
    with torch.no_grad():
        out = chat_model.model.generate(torch.tensor([ids]), max_new_tokens=n, do_sample=False,
                                        pad_token_id=chat_model.tokenizer.pad_token_id)
    return chat_model.tokenizer.decode(out[0, len(ids):], skip_special_tokens=True)


@pytest.fixture(scope="module")
def chat_client(chat_model):
    with chat_serving(chat_model, max_new_tokens=64) as client:
        yield client


def test_generate_prompt_and_messages_match_transformers(chat_client, chat_model):
    tok = chat_model.tokenizer
    r = chat_client.post("/v1/generate", json={"prompt": "the cat sat", "raw": True, "max_new_tokens": 6,
                                               "temperature": 0})
    assert r.status_code == 200, r.text
    body = r.json()
    ids = tok("the cat sat")["input_ids"]
    assert body["text"] == reference(chat_model, ids, 6) and body["finish_reason"] == "length"
    assert body["usage"] == {"prompt_tokens": len(ids), "completion_tokens": 6, "total_tokens": len(ids) + 6}

    r = chat_client.post("/v1/generate", json={"messages": CHAT, "max_new_tokens": 5, "temperature": 0})
    templated = tok(tok.apply_chat_template(CHAT, tokenize=False, add_generation_prompt=True),
                    add_special_tokens=False)["input_ids"]
    assert r.json()["usage"]["prompt_tokens"] == len(templated)
    assert r.json()["text"] == reference(chat_model, templated, 5)


def test_chat_completion_in_openai_shape(chat_client, chat_model):
    r = chat_client.post("/v1/chat/completions", json={"model": "anything", "messages": CHAT, "max_tokens": 4,
                                                       "temperature": 0, "seed": 1})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "chat.completion" and body["id"].startswith("chatcmpl-")
    assert body["model"] == "tiny-chat" and isinstance(body["created"], int)
    (choice,) = body["choices"]
    assert choice["message"]["role"] == "assistant" and choice["finish_reason"] == "length"
    assert body["usage"]["completion_tokens"] == 4


def test_streams_are_server_sent_events_that_add_up(chat_client):
    base = {"max_tokens": 7, "temperature": 0}
    whole = chat_client.post("/v1/completions", json={"prompt": "hello how", **base}).json()
    r = chat_client.post("/v1/completions", json={"prompt": "hello how", "stream": True,
                                                  "stream_options": {"include_usage": True}, **base})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    ev = events(r.text)
    assert ev[-1] == "[DONE]" and ev[-2]["usage"] == whole["usage"] and ev[-2]["choices"] == []
    assert ev[-3]["choices"][0]["finish_reason"] == "length"
    assert "".join(e["choices"][0]["text"] for e in ev[:-2]) == whole["choices"][0]["text"]
    assert all(e["object"] == "text_completion" and e["id"] == ev[0]["id"] for e in ev[:-1])

    r = chat_client.post("/v1/chat/completions", json={"messages": CHAT, "stream": True, **base})
    ev = events(r.text)
    assert ev[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert ev[-2]["choices"][0] == {"index": 0, "delta": {}, "finish_reason": "length", "logprobs": None}
    assert all("usage" not in e for e in ev[:-1])  # only with include_usage

    r = chat_client.post("/v1/generate", json={"prompt": "hello how", "raw": True, "stream": True,
                                               "max_new_tokens": 7, "temperature": 0})
    ev = events(r.text)
    assert "".join(e["text"] for e in ev[:-1]) == whole["choices"][0]["text"]
    assert ev[-2]["finish_reason"] == "length" and ev[-2]["usage"]["completion_tokens"] == 7


def test_stop_strings_and_seeds(chat_client):
    def complete(**kw):
        r = chat_client.post("/v1/completions", json={"prompt": "the cat sat on the mat", "max_tokens": 12, **kw})
        assert r.status_code == 200, r.text
        return r.json()["choices"][0]

    free = complete(temperature=0)["text"]  # " mat mat mat ...": the tiny model repeats its last word
    stopped = complete(temperature=0, stop=["mat m"])
    assert stopped["finish_reason"] == "stop" and stopped["text"] == free[:free.index("mat m")]
    sampled = [complete(temperature=1.5, top_k=0, seed=s)["text"] for s in (3, 3, 4)]
    assert sampled[0] == sampled[1] and sampled[0] != sampled[2]


def test_concurrent_generations_each_get_their_own_answer(chat_model):
    prompts = ["the cat", "a dog runs", "hello how are you", "ein Hund", "这家酒店很好", "translate to German"]
    tok = chat_model.tokenizer
    expected = [reference(chat_model, tok(p)["input_ids"], 5) for p in prompts]
    app = create_app(ServeSettings(max_batch=4), task="chat", load=lambda: GenerationPredictor(chat_model))

    async def main():
        async with async_serving(app) as client:
            replies = await asyncio.gather(*(client.post("/v1/completions", json={
                "prompt": p, "max_tokens": 5, "temperature": 0}) for p in prompts))
            return replies, (await client.get("/metrics")).text

    replies, metrics = asyncio.run(main())
    assert [r.json()["choices"][0]["text"] for r in replies] == expected
    steps = float(re.search(r"^lmk_decode_batch_size_count (\S+)", metrics, re.M).group(1))
    rows = float(re.search(r"^lmk_decode_batch_size_sum (\S+)", metrics, re.M).group(1))
    made = [r.json()["usage"]["completion_tokens"] for r in replies]
    assert rows == sum(n - 1 for n in made) and steps < rows  # the 1st token comes from prefill; shared steps
    assert f"lmk_generated_tokens_total {float(sum(made))}" in metrics
    assert re.search(r'lmk_requests_total\{route="/v1/completions",status="200"\} 6.0', metrics)
    for name in ("lmk_time_to_first_token_seconds_count 6.0", "lmk_running_requests ",
                 "lmk_generated_tokens_per_second", "lmk_queue_depth 0.0"):
        assert name in metrics, name


LONG_PROMPT = "the cat sat on the mat " * 60  # > 255 tokens: over the tiny model's context

BAD_GENERATION = [  # (path, body, status, message fragment, param)
    ("/v1/chat/completions", {"messages": CHAT, "max_tokens": -1}, 422,
     "max_tokens: Input should be greater than or equal to 1", "max_tokens"),
    ("/v1/chat/completions", {"messages": CHAT, "max_tokens": 65}, 422,
     "more than this server's limit of 64 new tokens", "max_tokens"),
    ("/v1/chat/completions", {"messages": CHAT, "max_completion_tokens": 1000}, 422,
     "limit of 64", "max_completion_tokens"),
    ("/v1/chat/completions", {"messages": []}, 422, "messages: List should have at least 1 item", "messages"),
    ("/v1/chat/completions", {"messages": [{"role": "robot", "content": "x"}]}, 422, "messages[0].role", None),
    ("/v1/chat/completions", {"messages": "hello"}, 422, "messages: Input should be a valid list", "messages"),
    ("/v1/chat/completions", {"messages": CHAT, "n": 2}, 422, "n: Input should be less than or equal to 1", "n"),
    ("/v1/chat/completions", {"messages": CHAT, "temperature": 3}, 422, "temperature", "temperature"),
    ("/v1/chat/completions", {"messages": CHAT, "temperature": "hot"}, 422, "temperature", "temperature"),
    ("/v1/chat/completions", {"messages": CHAT, "stop": ["a", "b", "c", "d", "e"]}, 422, "at most 4", "body"),
    ("/v1/chat/completions", {"messages": CHAT, "seed": -5}, 422, "seed", "seed"),
    ("/v1/chat/completions", {"messages": CHAT, "tools": []}, 422, "tools: Extra inputs are not permitted", "tools"),
    ("/v1/chat/completions", {"messages": CHAT, "stream": "yes"}, 422, "stream", "stream"),
    ("/v1/chat/completions", {"messages": CHAT, "seed": 2**64}, 422, "seed", "seed"),
    ("/v1/chat/completions", {"messages": CHAT, "max_tokens": 5.5}, 422, "max_tokens", "max_tokens"),
    ("/v1/chat/completions", {"messages": CHAT, "logit_bias": {"1": 5}}, 422, "logit_bias: Extra inputs", "logit_bias"),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": "x"}]}]},
     422, "messages[0].content", None),
    ("/v1/completions", {"prompt": ""}, 422, "prompt: empty text", "prompt"),
    ("/v1/completions", {"prompt": ["a", "b"]}, 422, "prompt: Input should be a valid string", "prompt"),
    ("/v1/completions", {"prompt": "a\ud800"}, 422, "unpaired surrogate", "prompt"),
    ("/v1/completions", {"prompt": LONG_PROMPT}, 413, "more than the limit of 255", "prompt"),
    ("/v1/generate", {"prompt": "hi", "messages": CHAT}, 422, "exactly one of prompt and messages", "body"),
    ("/v1/generate", {}, 422, "exactly one of prompt and messages", "body"),
    ("/v1/generate", {"prompt": "hi", "max_new_tokens": 0}, 422, "max_new_tokens", "max_new_tokens"),
    ("/v1/generate", b"\xff\xfe", 422, "not valid UTF-8", "body"),
    ("/v1/generate", b"", 422, "empty body", "body"),
]


@pytest.mark.parametrize("path,body,status,message,param", BAD_GENERATION,
                         ids=[f"{i}-{p.rsplit('/', 1)[-1]}" for i, (p, *_) in enumerate(BAD_GENERATION)])
def test_bad_generation_input_gets_a_clear_4xx(chat_client, path, body, status, message, param):
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    r = chat_client.post(path, content=content, headers={"content-type": "application/json"})
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert message in error["message"], error
    if param is not None:
        assert error["param"] == param


def test_truncate_keeps_the_end_of_a_long_prompt(chat_client):
    r = chat_client.post("/v1/completions", json={"prompt": LONG_PROMPT, "truncate": True, "max_tokens": 3})
    assert r.status_code == 200 and r.json()["usage"]["prompt_tokens"] == 255
    assert r.json()["usage"]["completion_tokens"] == 1  # the context (256) leaves room for one token


def test_model_without_chat_template_refuses_messages_but_completes(chat_model):
    import copy
    import types

    tok = copy.deepcopy(chat_model.tokenizer)
    tok.chat_template = None
    plain = types.SimpleNamespace(model=chat_model.model, tokenizer=tok, card=chat_model.card, path=chat_model.path)
    with chat_serving(plain) as client:
        r = client.post("/v1/chat/completions", json={"messages": CHAT, "max_tokens": 2})
        assert r.status_code == 422 and "no chat template" in r.json()["error"]["message"]
        assert client.post("/v1/completions", json={"prompt": "hi", "max_tokens": 2}).status_code == 200


def test_full_queue_429_and_deadline_504(chat_model):
    app = create_app(ServeSettings(max_batch=1, max_queue=1, max_new_tokens=256), task="chat",
                     load=lambda: GenerationPredictor(chat_model))
    long = {"prompt": "hello", "max_tokens": 250, "temperature": 0}

    async def main():
        async with async_serving(app) as client:
            engine = app.state.service.engine
            running = asyncio.ensure_future(client.post("/v1/completions", json=long))
            while engine.running == 0:
                await asyncio.sleep(0.005)
            queued = asyncio.ensure_future(client.post("/v1/completions", json={**long, "max_tokens": 2}))
            while engine.depth == 0:
                await asyncio.sleep(0.005)
            refused = await client.post("/v1/completions", json=long)
            return refused, await running, await queued

    refused, running, queued = asyncio.run(main())
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
    assert "already wait" in refused.json()["error"]["message"]
    assert running.status_code == 200 and queued.status_code == 200

    # admission control off: the request computes until the deadline (on, it is refused first: test_admission.py)
    with chat_serving(chat_model, timeout_s=0.01, max_new_tokens=256, admission="off") as client:
        r = client.post("/v1/completions", json=long)
        assert r.status_code == 504 and "--timeout-s" in r.json()["error"]["message"]
        r = client.post("/v1/completions", json={**long, "stream": True})
        assert r.status_code in (200, 504)  # 504 unless the first token beat the 10 ms deadline
        assert client.app.state.service.engine.running == 0 or _drains(client.app.state.service.engine)


def _drains(engine) -> bool:
    import time

    deadline = time.monotonic() + 10
    while engine.running and time.monotonic() < deadline:
        time.sleep(0.01)
    return engine.running == 0


def test_openapi_names_the_generation_bodies(chat_client):
    from test_app import check_openapi

    spec = check_openapi(chat_client, "chat", {"/v1/generate": "GenerateRequest",
                                               "/v1/completions": "CompletionRequest",
                                               "/v1/chat/completions": "ChatCompletionRequest"})
    schemas = spec["components"]["schemas"]
    assert schemas["ChatCompletionRequest"]["properties"]["messages"]["items"] == {
        "$ref": "#/components/schemas/ChatMessage"}
    assert {"messages", "max_tokens", "temperature", "stream", "stop", "seed"} <= set(
        schemas["ChatCompletionRequest"]["properties"])
    op = spec["paths"]["/v1/chat/completions"]["post"]
    assert set(op["responses"]["200"]["content"]) == {"application/json", "text/event-stream"}
