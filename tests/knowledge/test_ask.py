"""`lmkernel ask` and a server on a real index: the same answer from CLI, Python and HTTP; refresh; errors."""

from __future__ import annotations

import json
import time

import pytest
from fastapi.testclient import TestClient
from grounding_helpers import NoModel, make_chat_run, make_qa_run, write_faq
from typer.testing import CliRunner

from lmkernel.cli import app
from lmkernel.errors import LmkError
from lmkernel.knowledge.answer import DONT_KNOW, ask
from lmkernel.knowledge.index import add_documents, build_index
from lmkernel.serve.knowledge import Knowledge

Q = "How do I reset my password?"


@pytest.fixture(scope="module")
def idx(tmp_path_factory, tiny_bert):
    root = tmp_path_factory.mktemp("ask")
    build_index([write_faq(root / "faq.jsonl")], root / "idx", str(tiny_bert), progress=False)
    return root / "idx"


@pytest.fixture(scope="module")
def chat_run(tiny_llama, tmp_path_factory):
    return make_chat_run(tiny_llama, tmp_path_factory.mktemp("ask-chat"))


def cli(*args):
    return CliRunner().invoke(app, ["ask", *map(str, args)])


def test_cli_python_and_server_give_the_same_answer(idx, chat_run):
    import lmkernel
    from lmkernel.serve.app import create_app
    from lmkernel.serve.generation.predictor import GenerationPredictor
    from lmkernel.serve.settings import ServeSettings

    r = cli(idx, Q, "--generator", chat_run, "--k", 2, "--max-new-tokens", 8, "--min-score", -1, "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["grounded"] is True and len(out["passages"]) == 2
    assert {c["chunk_id"] for c in out["citations"]} <= {p["chunk_id"] for p in out["passages"]}
    py = ask(idx, Q, generator=chat_run, k=2, max_new_tokens=8, min_score=-1)
    assert py.answer == out["answer"] and [h.chunk_id for h in py.hits] == [p["chunk_id"] for p in out["passages"]]
    model = lmkernel.load(chat_run)
    served = create_app(ServeSettings(max_new_tokens=8, admission="off"), task="chat",
                        load=lambda: GenerationPredictor(model), knowledge=Knowledge(idx, k=2, min_score=-1))
    with TestClient(served) as c:
        while c.get("/readyz").status_code != 200:
            assert c.get("/readyz").json()["status"] == "loading"
            time.sleep(0.05)
        reply = c.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": Q}],
                                                      "max_tokens": 8, "temperature": 0}).json()
    assert reply["choices"][0]["message"]["content"] == out["answer"]
    assert reply["citations"] == [{k: c[k] for k in ("index", "chunk_id", "source", "text", "doc_id")}
                                  for c in out["citations"]]


def test_cli_says_it_does_not_know_below_the_threshold(idx, chat_run):
    r = cli(idx, "退货要多久？", "--generator", chat_run, "--min-score", 1.01)
    assert r.exit_code == 0 and r.output.strip() == DONT_KNOW["zh"]


@pytest.mark.parametrize("args, needle", [
    (["{missing}", Q, "--generator", "{chat}"], "{missing}"),
    (["{idx}", " ", "--generator", "{chat}"], "question is empty"),
    (["{idx}", Q, "--generator", "{chat}", "--k", "0"], "k must be between"),
    (["{idx}", Q], "exactly one"),
    (["{idx}", Q, "--qa", "{chat}"], "not an extractive QA model"),
    (["{idx}", Q, "--generator", "{chat}", "--filter", "nokey"], "key=value"),
])
def test_cli_errors_are_clear(idx, chat_run, tmp_path, args, needle):
    fill = {"missing": tmp_path / "nowhere", "idx": idx, "chat": chat_run}
    r = cli(*[a.format(**fill) for a in args])
    assert r.exit_code == 2, r.output
    assert needle.format(**fill) in r.output


def test_server_sees_documents_added_while_it_runs(tmp_path, tiny_bert):
    from lmkernel.serve.app import create_app
    from lmkernel.serve.settings import ServeSettings

    build_index([write_faq(tmp_path / "faq.jsonl")], tmp_path / "idx", str(tiny_bert), progress=False)
    served = create_app(ServeSettings(admission="off"), task="classification", load=NoModel,
                        knowledge=Knowledge(tmp_path / "idx"))
    with TestClient(served) as c:
        while c.get("/readyz").status_code != 200:
            time.sleep(0.05)
        query = {"query": "parcel lockers at the station", "k": 10, "mode": "bm25"}
        assert c.post("/v1/search", json=query).json()["data"] == []
        zh = c.post("/v1/search", json={"query": "refund 退货", "k": 10, "filters": {"lang": "zh"}}).json()["data"]
        assert [h["doc_id"] for h in zh] == ["faq-4"] and zh[0]["meta"] == {"lang": "zh"}
        bad = c.post("/v1/search", json={"query": "refund", "filters": {"colour": "red"}})
        assert bad.status_code == 422 and "colour" in bad.json()["error"]["message"]
        (tmp_path / "new.jsonl").write_text(json.dumps({"id": "lockers", "text": "Parcel lockers stand at the "
                                                        "station."}) + "\n", encoding="utf-8")
        add_documents(tmp_path / "idx", [tmp_path / "new.jsonl"], progress=False)
        hits = c.post("/v1/search", json=query).json()["data"]
        assert [h["doc_id"] for h in hits] == ["lockers"]


def test_an_embedder_other_than_the_indexs_is_refused(idx, tiny_bert):
    import numpy as np

    from lmkernel.knowledge.embedder import Embedder

    rng = np.random.default_rng(0)
    other = Embedder(ref="other-model", dim=32, encode=lambda texts, _: rng.normal(size=(len(texts), 32)))
    with pytest.raises(LmkError, match="makes other vectors"):
        Knowledge(idx, other).load()
    Knowledge(idx, str(tiny_bert)).load()  # the index's own model is fine


@pytest.fixture(scope="module")
def qa_run(tiny_bert, tmp_path_factory):
    return make_qa_run(tiny_bert, tmp_path_factory.mktemp("ask-qa"))


def test_extractive_qa_from_cli_python_and_server(idx, qa_run):
    import lmkernel
    from lmkernel.serve.app import create_app
    from lmkernel.serve.settings import ServeSettings

    r = cli(idx, Q, "--qa", qa_run, "--k", 3, "--min-score", -1, "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["grounded"] is True and len(out["citations"]) == 1
    cited = out["citations"][0]
    passage = out["passages"][cited["index"] - 1]
    assert cited["chunk_id"] == passage["chunk_id"] and out["answer"].endswith(f"[{cited['index']}]")
    span = out["answer"].rsplit(" [", 1)[0]
    assert span and span in passage["text"]  # the answer is a span of the cited passage
    model = lmkernel.load(qa_run)
    assert ask(idx, Q, qa=model, k=3, min_score=-1).answer == out["answer"]
    served = create_app(ServeSettings(admission="off"), task="classification", load=NoModel,
                        knowledge=Knowledge(idx, k=3, min_score=-1, qa=model))
    with TestClient(served) as c:
        while c.get("/readyz").status_code != 200:
            time.sleep(0.05)
        reply = c.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": Q}]}).json()
        assert reply["choices"][0]["message"]["content"] == out["answer"]
        assert [x["chunk_id"] for x in reply["citations"]] == [cited["chunk_id"]] and reply["grounded"]
        stream = c.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": Q}],
                                                      "stream": True}).text
        assert cited["chunk_id"] in stream and stream.rstrip().endswith("[DONE]")
        unknown = c.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": Q}],
                                                       "knowledge": {"min_score": 1.01}}).json()
        assert unknown["choices"][0]["message"]["content"] == DONT_KNOW["en"] and not unknown["grounded"]


def test_serve_refuses_a_missing_index_before_starting(chat_run, tmp_path):
    r = CliRunner().invoke(app, ["serve", str(chat_run), "--knowledge", str(tmp_path / "nowhere"), "--port", "1"])
    assert r.exit_code == 2 and "nowhere" in r.output, r.output


def test_searches_stay_whole_while_documents_are_added(tmp_path, tiny_bert):
    """`index add` publishing new generations while the server searches: every answer is one generation's."""
    import threading

    from lmkernel.serve.app import create_app
    from lmkernel.serve.settings import ServeSettings

    build_index([write_faq(tmp_path / "faq.jsonl")], tmp_path / "idx", str(tiny_bert), progress=False)
    served = create_app(ServeSettings(admission="off"), task="classification", load=NoModel,
                        knowledge=Knowledge(tmp_path / "idx"))
    stop, errors = threading.Event(), []

    def writer():
        for i in range(6):
            f = tmp_path / f"add{i}.jsonl"
            f.write_text(json.dumps({"id": f"lockers{i}", "text": f"Parcel lockers number {i} stand at the "
                                     "station."}) + "\n", encoding="utf-8")
            add_documents(tmp_path / "idx", [f], progress=False)
        stop.set()

    with TestClient(served) as c:
        while c.get("/readyz").status_code != 200:
            time.sleep(0.05)
        thread = threading.Thread(target=writer)
        thread.start()
        seen = 0
        while not stop.is_set() or seen == 0:
            r = c.post("/v1/search", json={"query": "parcel lockers station", "k": 20, "mode": "bm25"})
            if r.status_code != 200:
                errors.append(r.text)
                break
            ids = sorted(h["doc_id"] for h in r.json()["data"])
            assert ids == [f"lockers{i}" for i in range(len(ids))]  # a prefix of the adds: nothing half-written
            seen = len(ids)
        thread.join()
        assert not errors
        final = c.post("/v1/search", json={"query": "parcel lockers station", "k": 20, "mode": "bm25"}).json()
        assert len(final["data"]) == 6


def test_a_model_without_chat_template_continues_the_plain_prompt(idx, chat_run, tmp_path):
    import shutil

    import lmkernel
    from lmkernel.knowledge.answer import PLAIN_STOPS, build_messages, plain_prompt
    from lmkernel.serve.app import create_app
    from lmkernel.serve.generation.predictor import GenerationPredictor
    from lmkernel.serve.settings import ServeSettings

    plain = tmp_path / "plain"
    shutil.copytree(chat_run, plain)
    (plain / "model" / "chat_template.jinja").unlink()
    config = json.loads((plain / "model" / "tokenizer_config.json").read_text(encoding="utf-8"))
    config.pop("chat_template", None)
    (plain / "model" / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    model = lmkernel.load(plain)
    got = ask(idx, Q, generator=model, k=2, max_new_tokens=6, min_score=-1)
    text = plain_prompt(build_messages(Q, got.hits))
    assert text.endswith(f"Question: {Q}\n\nAnswer:")
    assert plain_prompt(build_messages("退货？", got.hits)).endswith("答案：")
    want = model.generate(text, raw=True, max_new_tokens=6, temperature=0.0, stop=PLAIN_STOPS)[0]["text"]
    assert got.answer == want
    served = create_app(ServeSettings(max_new_tokens=6, admission="off"), task="chat",
                        load=lambda: GenerationPredictor(model), knowledge=Knowledge(idx, k=2, min_score=-1))
    with TestClient(served) as c:
        while c.get("/readyz").status_code != 200:
            time.sleep(0.05)
        reply = c.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": Q}],
                                                      "temperature": 0}).json()
    assert reply["choices"][0]["message"]["content"] == got.answer


def test_lmkernel_serve_with_knowledge_end_to_end(idx, chat_run):
    """The real command: grounded chat, embeddings and search through the unchanged openai client."""
    import os
    import socket
    import subprocess
    import sys

    import httpx
    import openai

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "lmkernel.cli", "serve", str(chat_run), "--port", str(port),
                             "--knowledge", str(idx), "--knowledge-k", "2", "--knowledge-min-score", "-1",
                             "--max-new-tokens", "8", "--threads", "1"],
                            env={**os.environ, "HF_HUB_OFFLINE": "1"}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None and time.monotonic() < deadline, "server did not get ready"
            try:
                if httpx.get(f"{base}/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        oa = openai.OpenAI(base_url=f"{base}/v1", api_key="unused", max_retries=0, timeout=60)
        reply = oa.chat.completions.create(model="m", messages=[{"role": "user", "content": Q}], temperature=0)
        assert reply.model_extra["grounded"] is True and isinstance(reply.model_extra["citations"], list)
        assert reply.choices[0].message.content == ask(idx, Q, generator=chat_run, k=2, min_score=-1,
                                                       max_new_tokens=8).answer
        assert len(oa.embeddings.create(model="m", input=["a", "b"]).data) == 2
        hits = httpx.post(f"{base}/v1/search", json={"query": "refund", "k": 2}).json()["data"]
        assert len(hits) == 2 and hits[0]["chunk_id"].endswith("#0")
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=60)
    assert "ready" in out


def test_a_served_qa_run_answers_grounded_chats_with_its_own_weights(idx, qa_run):
    import lmkernel
    from lmkernel.serve.app import create_app
    from lmkernel.serve.qa import QaPredictor
    from lmkernel.serve.settings import ServeSettings

    model = lmkernel.load(qa_run)
    knowledge = Knowledge(idx, k=3, min_score=-1)
    knowledge.check(generation=False, qa=True)  # what `lmkernel serve QA_RUN --knowledge IDX` does
    served = create_app(ServeSettings(admission="off"), task="qa", load=lambda: QaPredictor(model),
                        knowledge=knowledge)
    with TestClient(served) as c:
        while c.get("/readyz").status_code != 200:
            assert c.get("/readyz").json()["status"] == "loading", c.get("/readyz").text
            time.sleep(0.05)
        assert knowledge.qa is model
        reply = c.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": Q}]}).json()
        assert reply["choices"][0]["message"]["content"] == ask(idx, Q, qa=model, k=3, min_score=-1).answer
        assert len(reply["citations"]) == 1
