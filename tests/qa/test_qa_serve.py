"""POST /v1/qa on a tiny qa run, through FastAPI's TestClient: the same answers as Python predict."""

from __future__ import annotations

import pytest
from qa_helpers import qa_rows
from serve_helpers import serving

import lmkernel
from lmkernel.serve.qa import QaPredictor


@pytest.fixture(scope="module")
def qa_model(qa_run):
    return lmkernel.load(qa_run)


def test_qa_route_answers_like_predict(qa_model):
    rows = qa_rows(6)
    want = qa_model.predict([{"question": r["question"], "context": r["context"]} for r in rows])
    with serving(lambda: QaPredictor(qa_model), task="qa") as client:
        for r, w in zip(rows, want):
            got = client.post("/v1/qa", json={"question": r["question"], "context": r["context"]})
            assert got.status_code == 200, got.text
            body = got.json()
            assert body["model"] == "run" and body["usage"]["input_tokens"] > 0
            assert {k: body[k] for k in ("answer", "start", "end")} == {k: w[k] for k in ("answer", "start", "end")}
            assert body["score"] == pytest.approx(w["score"], abs=1e-4)
        info = client.get("/v1/models").json()["data"][0]
        assert info["task"] == "qa"
        from test_app import check_openapi

        check_openapi(client, "qa", {"/v1/qa": "QaRequest"})


def test_long_context_runs_as_windows_in_the_server(qa_model):
    context = " and ".join(["the hotel was"] * 12) + " and the film was great"  # past max_length 32: windows
    predictor = QaPredictor(qa_model)
    encoded = predictor.encode([("the film was", context)], truncate=False)
    assert len(encoded[0].windows) > 1
    with serving(lambda: predictor, task="qa") as client:
        body = client.post("/v1/qa", json={"question": "the film was", "context": context}).json()
    assert body["answer"] == qa_model.predict({"question": "the film was", "context": context})[0]["answer"]


@pytest.mark.parametrize("body,status,message", [
    ({"question": "the film was", "context": "the film was great " * 20}, 413,
     "the context has 80 tokens, more than the limit of 16"),
    ({"question": "the film was"}, 422, "context: Field required"),
    ({"question": "", "context": "the film was great"}, 422, "question: empty text"),
    ({"question": "q", "context": "c", "texts": ["x"]}, 422, "texts"),
])
def test_bad_qa_requests(qa_model, body, status, message):
    with serving(lambda: QaPredictor(qa_model, max_input_tokens=16), task="qa") as client:
        r = client.post("/v1/qa", json=body)
        assert r.status_code == status and message in r.json()["error"]["message"], r.text


def test_truncate_cuts_the_context(qa_model):
    with serving(lambda: QaPredictor(qa_model, max_input_tokens=16), task="qa") as client:
        r = client.post("/v1/qa", json={"question": "the film was", "context": "the film was great " * 20,
                                        "truncate": True})
    assert r.status_code == 200, r.text
    assert r.json()["end"] <= len("the film was great " * 4)
