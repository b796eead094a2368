"""POST /v1/entities: a fake NER model for the contract and batching, and a real tiny NER artifact end to end."""

from __future__ import annotations

import asyncio
import re

import pytest
from serve_helpers import async_serving, serving

from lmkernel.serve.app import create_app
from lmkernel.serve.entities import NerPredictor
from lmkernel.serve.settings import ServeSettings

NER_LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]


class FakeNer:
    """Every capitalised word is a PER entity; records the batches it ran."""

    labels = NER_LABELS

    def __init__(self, tokenizer, path):
        self.tokenizer = tokenizer
        self.card = {"task": "ner", "labels": NER_LABELS, "weights": "full"}
        self.path = path
        self.batches: list[list[str]] = []

    def predict(self, texts, batch_size=64, tokenizer=None):
        self.batches.append(list(texts))
        return [{"text": t, "entities": [{"type": "PER", "text": m.group(), "start": m.start(), "end": m.end(),
                                          "score": 0.9} for m in re.finditer(r"\b[A-Z]\w*", t)]} for t in texts]


@pytest.fixture()
def fake_ner(tiny_model, tmp_path):
    return FakeNer(tiny_model.tokenizer, tmp_path / "ner-run" / "model")


def ner_app(model, **settings):
    return create_app(ServeSettings(**settings), task="ner", load=lambda: NerPredictor(model, max_input_tokens=16))


def test_entities_contract_and_usage(fake_ner):
    with serving(lambda: NerPredictor(fake_ner, max_input_tokens=16), task="ner") as client:
        r = client.post("/v1/entities", json={"texts": ["Anna met Bob in Paris", "nothing here"]})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["model"] == "ner-run"
        first = body["results"][0]["entities"]
        assert [(e["text"], e["start"], e["end"]) for e in first] == [("Anna", 0, 4), ("Bob", 9, 12), ("Paris", 16, 21)]
        assert body["results"][1] == {"entities": []}
        assert body["usage"]["input_tokens"] > 0
        assert client.get("/v1/models").json()["data"][0]["labels"] == NER_LABELS
        from test_app import check_openapi

        check_openapi(client, "ner", {"/v1/entities": "EntitiesRequest"})


@pytest.mark.parametrize("body,status,message", [
    ({"texts": ["the hotel was great " * 10]}, 413, "texts[0] has 40 tokens, more than the limit of 16"),
    ({"texts": []}, 422, "texts: List should have at least 1 item"),
    ({"texts": [""]}, 422, "texts[0]: empty text"),
    ({"text": "Anna"}, 422, "texts: Field required"),
    ({"texts": ["Anna"] * 300}, 413, "300 texts in one request; the limit is 256"),
])
def test_bad_entities_input(fake_ner, body, status, message):
    with serving(lambda: NerPredictor(fake_ner, max_input_tokens=16), task="ner") as client:
        r = client.post("/v1/entities", json=body)
        assert r.status_code == status and message in r.json()["error"]["message"], r.text


def test_truncate_cuts_at_a_token_boundary(fake_ner):
    with serving(lambda: NerPredictor(fake_ner, max_input_tokens=16), task="ner") as client:
        r = client.post("/v1/entities", json={"texts": ["Anna was great " * 10], "truncate": True})
        assert r.status_code == 200 and r.json()["usage"]["input_tokens"] == 16
    sent = fake_ner.batches[-1][0]
    assert ("Anna was great " * 10).startswith(sent) and sent.endswith(("Anna", "was", "great"))
    assert len(fake_ner.tokenizer(sent, add_special_tokens=False)["input_ids"]) == 16


def test_concurrent_entity_requests_share_batches(fake_ner):
    app = ner_app(fake_ner, max_wait_ms=50)
    names = ["Anna", "Bob", "Chen", "Dora", "Emil", "Fang", "Gus", "Hana"] * 3

    async def main():
        async with async_serving(app) as client:
            return await asyncio.gather(*(client.post("/v1/entities", json={"texts": [f"{n} lives here {i}"]})
                                          for i, n in enumerate(names)))

    replies = asyncio.run(main())
    assert [r.json()["results"][0]["entities"][0]["text"] for r in replies] == names
    ran = [b for b in fake_ner.batches if not any("Warm" in t for t in b)]
    assert sum(map(len, ran)) == len(names) and len(ran) < len(names)


@pytest.fixture(scope="module")
def ner_run(tiny_bert, tmp_path_factory):
    import torch

    from lmkernel.artifact import save_artifact
    from lmkernel.models.resolve import load_tokenizer
    from lmkernel.tasks import get_task, task_names

    if "ner" not in task_names():
        pytest.skip("task ner is not registered")
    torch.manual_seed(0)
    model = get_task("ner").build_model(tiny_bert, NER_LABELS)
    run = tmp_path_factory.mktemp("serve-ner") / "tiny-ner"
    card = {"task": "ner", "labels": NER_LABELS, "base_model": str(tiny_bert), "max_length": 64}
    save_artifact(run / "model", model, load_tokenizer(tiny_bert), card)
    return run


def test_real_ner_artifact_end_to_end(ner_run):
    import lmkernel
    from lmkernel.serve.routes import load_predictor

    texts = ["the film was great", "房间太差 the hotel was awful and the service was poor"]
    want = lmkernel.load(ner_run).predict(texts)
    predictor = load_predictor(ner_run)
    assert predictor.packed > 0  # served with packed linear layers, against a plain load's answers
    with serving(lambda: predictor, task="ner") as client:
        r = client.post("/v1/entities", json={"texts": texts})
    assert r.status_code == 200, r.text
    got = r.json()["results"]
    for g, w in zip(got, want):
        assert [(e["type"], e["start"], e["end"]) for e in g["entities"]] == [
            (e["type"], e["start"], e["end"]) for e in w["entities"]]
        for e in g["entities"]:
            assert texts[got.index(g)][e["start"]:e["end"]] == e["text"]


def rounded(results: list[dict]) -> list[list[tuple]]:
    return [[(e["type"], e["text"], e["start"], e["end"], round(e["score"], 4)) for e in r["entities"]]
            for r in results]


def test_real_ner_predictor_is_safe_from_several_workers(ner_run):
    """`serve --workers N` calls the predictor from N threads at once: same answers, no tokenizer errors."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from lmkernel.serve.routes import load_predictor

    predictor = load_predictor(ner_run)
    words = ["Anna", "met", "Bob", "in", "Paris", "北京", "the", "hotel", "was", "awful"]
    batches = [[" ".join(words[(i + j) % 10] for j in range(3 + 40 * (i % 3))) for i in range(k, k + 3)]
               for k in range(40)]  # some past the model's 64 tokens: windows
    want = [predictor(b) for b in batches]
    used: dict[int, set[int]] = {}  # thread -> tokenizers its predict calls got
    task = predictor.model.task
    real = task.predict

    def spy(model, tokenizer, *args, **kwargs):  # the task's predict: what the artifact passes down
        used.setdefault(threading.get_ident(), set()).add(id(tokenizer))
        return real(model, tokenizer, *args, **kwargs)

    task.predict = spy
    try:
        with ThreadPoolExecutor(4) as pool:
            for _ in range(5):  # a race: several chances (with one shared tokenizer, ~1 run in 3 failed here)
                got = list(pool.map(predictor, batches))
                for g, w, b in zip(got, want, batches):
                    assert rounded(g) == rounded(w), (b, g, w)  # scores: threads may sum in another order
    finally:
        del task.predict
    per_thread = [ids for thread, ids in used.items() if thread != threading.get_ident()]
    assert len(per_thread) >= 2 and all(len(ids) == 1 for ids in per_thread)  # one tokenizer per thread...
    tokenizers = set().union(*per_thread)
    assert len(tokenizers) == len(per_thread)  # ...none shared between threads...
    assert not tokenizers & {id(predictor.tokenizer), id(predictor._truncating), id(predictor.model.tokenizer)}
