"""Chat completions grounded in an index, on the tiny Llama: shape, citations, streaming, don't know, search."""

from __future__ import annotations

import json
import time

import pytest
from fastapi.testclient import TestClient
from grounding_helpers import FakeIndex, make_chat_run

from lmkernel.knowledge.answer import DONT_KNOW, build_messages, cite
from lmkernel.serve.app import create_app
from lmkernel.serve.knowledge import Knowledge
from lmkernel.serve.settings import ServeSettings

openai = pytest.importorskip("openai")
Q = "How do I reset my password?"


@pytest.fixture(scope="module")
def embedder(tiny_bert):
    from lmkernel.knowledge.embedder import load_embedder

    return load_embedder(str(tiny_bert))


@pytest.fixture(scope="module")
def chat_model(tiny_llama, tmp_path_factory):
    import lmkernel

    return lmkernel.load(make_chat_run(tiny_llama, tmp_path_factory.mktemp("grounded")))


@pytest.fixture(scope="module")
def index(embedder):
    return FakeIndex(embedder)


@pytest.fixture(scope="module")
def client(chat_model, index):
    from lmkernel.serve.generation.predictor import GenerationPredictor

    app = create_app(ServeSettings(max_new_tokens=16, admission="off"), task="chat",
                     load=lambda: GenerationPredictor(chat_model), knowledge=Knowledge(index, k=3, min_score=0.3))
    with TestClient(app) as c:
        deadline = time.monotonic() + 60
        while c.get("/readyz").status_code != 200:
            assert time.monotonic() < deadline, c.get("/readyz").text
            time.sleep(0.02)
        yield c


def test_grounded_completion_cites_what_the_answer_marks(client, index, chat_model):
    from lmkernel.generation import prompt_ids

    oa = openai.OpenAI(base_url="http://testserver/v1", api_key="x", http_client=client, max_retries=0)
    reply = oa.chat.completions.create(model="tiny-chat", messages=[{"role": "user", "content": Q}],
                                       max_tokens=8, temperature=0)
    text = reply.choices[0].message.content
    extra = reply.model_extra
    assert extra["grounded"] is True and isinstance(extra["citations"], list)
    top = index.search(Q, k=3)
    assert extra["citations"] == [c.to_json() for c in cite(text, top)]
    want = prompt_ids(chat_model.tokenizer, None, messages=build_messages(Q, top), style=chat_model.prompt_style)
    assert reply.usage.prompt_tokens == len(want)  # the prompt `lmkernel ask` builds, token for token
    assert index.refreshed > 0  # the index is refreshed before each search
    same = chat_model.generate(build_messages(Q, top), max_new_tokens=8, temperature=0.0)[0]["text"]
    assert text == same


def test_grounded_stream_ends_with_citations(client):
    r = client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": Q}], "max_tokens": 6,
                                                  "temperature": 0, "stream": True})
    events = [json.loads(line[6:]) for line in r.text.splitlines() if line.startswith("data: {")]
    assert r.text.rstrip().endswith("data: [DONE]")
    final = [e for e in events if e["choices"] and e["choices"][0]["finish_reason"]]
    assert len(final) == 1 and final[0]["grounded"] is True and "citations" in final[0]
    text = "".join(e["choices"][0]["delta"].get("content", "") for e in events if e["choices"])
    whole = client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": Q}],
                                                      "max_tokens": 6, "temperature": 0}).json()
    assert text == whole["choices"][0]["message"]["content"] and final[0]["citations"] == whole["citations"]


def test_dont_know_below_the_threshold_without_the_model(client, index):
    body = {"messages": [{"role": "user", "content": "火星上的天气怎么样？"}], "knowledge": {"min_score": 1.01}}
    r = client.post("/v1/chat/completions", json=body)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["choices"][0]["message"]["content"] == DONT_KNOW["zh"] and out["grounded"] is False
    assert out["citations"] == [] and out["usage"]["completion_tokens"] == 0
    streamed = client.post("/v1/chat/completions", json={**body, "stream": True}).text
    assert DONT_KNOW["zh"] in streamed and '"grounded": false' in streamed and streamed.rstrip().endswith("[DONE]")
    en = client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "Mars weather?"}],
                                                   "knowledge": {"min_score": 1.01}}).json()
    assert en["choices"][0]["message"]["content"] == DONT_KNOW["en"]


def test_grounding_can_be_turned_off_per_request(client):
    out = client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": Q}], "max_tokens": 3,
                                                    "knowledge": {"enabled": False}}).json()
    assert "citations" not in out and out["usage"]["completion_tokens"] <= 3


def test_raw_prompt_endpoints_are_never_grounded(client, chat_model):
    """/v1/completions and /v1/generate continue the caller's text as-is (docs/serving.md)."""
    done = client.post("/v1/completions", json={"prompt": Q, "max_tokens": 4, "temperature": 0}).json()
    assert "citations" not in done and "grounded" not in done
    raw = chat_model.generate(Q, raw=True, max_new_tokens=4, temperature=0.0)[0]["text"]
    assert done["choices"][0]["text"] == raw
    gen = client.post("/v1/generate", json={"messages": [{"role": "user", "content": Q}], "max_new_tokens": 4})
    assert gen.status_code == 200 and "citations" not in gen.json()


def test_a_prompt_that_cannot_fit_is_a_413(client, index):
    long = "why " * 2000
    r = client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": long}]})
    assert r.status_code == 413 and "context" in r.json()["error"]["message"]


def test_search_route(client, index):
    r = client.post("/v1/search", json={"query": "refund card", "k": 2})
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    assert [h["chunk_id"] for h in data] == [h.chunk_id for h in index.search("refund card", k=2)]
    assert set(data[0]) == {"text", "score", "source", "chunk_id", "doc_id", "meta"}
    emb = client.post("/v1/embeddings", json={"input": "refund"})  # the index's model serves embeddings
    assert emb.status_code == 200 and len(emb.json()["data"][0]["embedding"]) == 32


@pytest.mark.parametrize("path, body, status, needle", [
    ("/v1/search", {"query": "  "}, 422, "question is empty"),
    ("/v1/search", {"query": "q", "k": 0}, 422, "k must be between"),
    ("/v1/search", {"query": "q", "k": 500}, 422, "k must be between"),
    ("/v1/search", {"query": "q", "mode": "fuzzy"}, 422, "mode"),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "q"}], "knowledge": {"k": 0}}, 422,
     "k must be between"),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "q"},
                                           {"role": "assistant", "content": "a"}]}, 422, "last message"),
])
def test_bad_knowledge_requests(client, path, body, status, needle):
    r = client.post(path, json=body)
    assert r.status_code == status, r.text
    assert needle in r.json()["error"]["message"]


def test_openapi_documents_the_knowledge_routes(client):
    spec = client.get("/openapi.json").json()
    assert {"/v1/search", "/v1/embeddings", "/v1/chat/completions"} <= set(spec["paths"])
    schemas = spec["components"]["schemas"]
    assert {"SearchRequest", "EmbeddingsRequest", "KnowledgeOptions"} <= set(schemas)
