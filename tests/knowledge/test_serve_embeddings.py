"""POST /v1/embeddings: the official openai client unchanged (float and its default base64), and bad input."""

from __future__ import annotations

import time

import numpy as np
import pytest
from fastapi.testclient import TestClient
from grounding_helpers import NoModel

from lmkernel.serve.app import create_app
from lmkernel.serve.knowledge import Knowledge
from lmkernel.serve.settings import ServeSettings

openai = pytest.importorskip("openai")


def serve_knowledge(knowledge, **settings):
    app = create_app(ServeSettings(admission="off", **settings), task="classification", load=NoModel,
                     knowledge=knowledge)
    client = TestClient(app)
    client.__enter__()
    deadline = time.monotonic() + 30
    while client.get("/readyz").status_code != 200:
        assert time.monotonic() < deadline, client.get("/readyz").text
        time.sleep(0.02)
    return client


@pytest.fixture(scope="module")
def embedder(tiny_bert):
    from lmkernel.knowledge.embedder import load_embedder

    return load_embedder(str(tiny_bert))


@pytest.fixture(scope="module")
def client(embedder):
    c = serve_knowledge(Knowledge(embedder=embedder), max_texts=4)
    yield c
    c.__exit__(None, None, None)


def test_openai_client_embeddings_float_and_base64(client, embedder):
    oa = openai.OpenAI(base_url="http://testserver/v1", api_key="unused", http_client=client, max_retries=0)
    texts = ["How do I reset my password?", "退货政策"]
    want = embedder.embed(texts)
    got = oa.embeddings.create(model="anything", input=texts)  # the client asks for base64 by default
    assert [d.index for d in got.data] == [0, 1] and got.object == "list"
    assert np.allclose(np.array([d.embedding for d in got.data]), want, atol=1e-6)
    assert got.usage.prompt_tokens == got.usage.total_tokens > 2
    as_float = oa.embeddings.create(model="anything", input="How do I reset my password?", encoding_format="float")
    assert np.allclose(as_float.data[0].embedding, want[0], atol=1e-6) and len(as_float.data) == 1
    assert as_float.model == got.model == embedder.ref.rstrip("/").rsplit("/", 1)[-1]
    same_dim = oa.embeddings.create(model="m", input="x", dimensions=32, encoding_format="float")
    assert len(same_dim.data[0].embedding) == 32


def test_raw_base64_is_little_endian_float32(client, embedder):
    import base64

    r = client.post("/v1/embeddings", json={"input": "hello", "encoding_format": "base64"})
    vec = np.frombuffer(base64.b64decode(r.json()["data"][0]["embedding"]), dtype="<f4")
    assert np.allclose(vec, embedder.embed("hello")[0], atol=1e-6)


@pytest.mark.parametrize("body, status, needle", [
    ({"input": [[1, 2, 3]]}, 422, "token-id input"),
    ({"input": [1, 2, 3]}, 422, "token-id input"),
    ({"input": ""}, 422, "empty"),
    ({"input": []}, 422, "non-empty list"),
    ({"input": "x", "dimensions": 8}, 422, "32-dimensional"),
    ({"input": "x", "encoding_format": "int8"}, 422, "encoding_format"),
    ({"input": ["a"] * 5}, 413, "--max-texts"),
])
def test_bad_embedding_requests_are_refused_clearly(client, body, status, needle):
    r = client.post("/v1/embeddings", json=body)
    assert r.status_code == status, r.text
    assert needle in r.json()["error"]["message"]


def test_openai_client_sees_token_ids_refused(client):
    oa = openai.OpenAI(base_url="http://testserver/v1", api_key="unused", http_client=client, max_retries=0)
    with pytest.raises(openai.UnprocessableEntityError, match="token-id"):
        oa.embeddings.create(model="m", input=[[5, 6, 7]])


def test_no_search_route_without_an_index(client):
    assert client.post("/v1/search", json={"query": "x"}).status_code == 404


def test_an_embedding_run_serves_embeddings_through_the_batcher(embedder, tiny_bert, monkeypatch):
    import types
    from pathlib import Path

    from lmkernel.models.resolve import load_tokenizer
    from lmkernel.serve import app as app_module
    from lmkernel.serve.knowledge import EmbeddingPredictor
    from lmkernel.serve.routes import TaskServing
    from lmkernel.serve.routes import knowledge as routes

    run = types.SimpleNamespace(path=Path("runs/faq-emb/model"), card={"max_length": 64, "base_model": "tiny"},
                                tokenizer=load_tokenizer(tiny_bert), embed=lambda texts: embedder.embed(texts))
    monkeypatch.setattr(app_module, "serving_for", lambda task: TaskServing(routes.router, EmbeddingPredictor))
    served = create_app(ServeSettings(max_wait_ms=1), task="embedding", load=lambda: EmbeddingPredictor(run))
    with TestClient(served) as c:
        while c.get("/readyz").status_code != 200:
            assert c.get("/readyz").json()["status"] == "loading", c.get("/readyz").text
            time.sleep(0.02)
        oa = openai.OpenAI(base_url="http://testserver/v1", api_key="unused", http_client=c, max_retries=0)
        got = oa.embeddings.create(model="faq-emb", input=["refund", "退货", "reset my password"])
        assert got.model == "faq-emb" and [m.id for m in oa.models.list()] == ["faq-emb"]
        want = embedder.embed(["refund", "退货", "reset my password"])
        assert np.allclose(np.array([d.embedding for d in got.data]), want, atol=1e-6)
        assert got.usage.prompt_tokens == sum(len(x) for x in load_tokenizer(tiny_bert)(
            ["refund", "退货", "reset my password"])["input_ids"])
        assert c.post("/v1/search", json={"query": "x"}).status_code == 404
        assert served.state.service.metrics is not None and served.state.service.batcher is not None
