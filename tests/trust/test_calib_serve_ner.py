"""The flags on the server's /v1/classify rows, the profile travelling with a compressed copy, and NER errors."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from datakit import make_rows

LABELS = ["negative", "positive"]


@pytest.fixture(scope="module")
def profiled_run(tiny_bert, tmp_path_factory) -> Path:
    """The tiny BERT with a random head (no training) and a trust profile calibrated on the sentiment rows."""
    import torch

    from lmkernel.artifact import save_artifact
    from lmkernel.models.resolve import load_tokenizer
    from lmkernel.tasks import get_task
    from lmkernel.trust.calibrate import build_profile

    torch.manual_seed(0)
    model = get_task("classification").build_model(tiny_bert, LABELS)
    tokenizer = load_tokenizer(tiny_bert)
    trust = build_profile(model, tokenizer, LABELS, make_rows(120, seed=1), make_rows(60, seed=2), max_length=32)
    run = tmp_path_factory.mktemp("calib-serve") / "run"
    card = {"task": "classification", "labels": LABELS, "base_model": str(tiny_bert), "max_length": 32}
    save_artifact(run / "model", model, tokenizer, card, trust=trust)
    return run


def test_classify_endpoint_rows_carry_the_flags(profiled_run):
    from fastapi.testclient import TestClient

    import lmkernel
    from lmkernel.serve.app import create_app
    from lmkernel.serve.predictor import ClassifierPredictor
    from lmkernel.serve.settings import ServeSettings

    model = lmkernel.load(profiled_run)
    expected = model.predict(["the film was great", "房间太差"])
    app = create_app(ServeSettings(max_wait_ms=2), task="classification", load=lambda: ClassifierPredictor(model))
    with TestClient(app) as client:
        deadline = time.monotonic() + 20
        while client.get("/readyz").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.01)
        body = client.post("/v1/classify", json={"texts": ["the film was great", "房间太差"]}).json()
    for row, want in zip(body["results"], expected):
        assert row["ood"] == want["ood"] and row["low_confidence"] == want["low_confidence"]
        assert row["ood_score"] == pytest.approx(want["ood_score"], rel=1e-2)  # unpadded serving path vs padded


def test_predictor_without_profile_keeps_rows_as_they_were(profiled_run, tmp_path):
    import shutil

    import lmkernel
    from lmkernel.serve.predictor import ClassifierPredictor

    plain = tmp_path / "plain"
    shutil.copytree(profiled_run, plain)
    (plain / "model" / "trust.json").unlink()
    predictor = ClassifierPredictor(lmkernel.load(plain))
    row = predictor(predictor.encode(["the film was great"], truncate=True))[0]
    assert set(row) == {"label", "score", "probabilities"}


def test_compressed_copy_carries_the_profile(profiled_run, tmp_path):
    import shutil

    from lmkernel.compress.workflow import _copy_trust_profile

    out = tmp_path / "copy"
    out.mkdir()
    _copy_trust_profile(profiled_run / "model", out)
    assert (out / "trust.json").read_bytes() == (profiled_run / "model" / "trust.json").read_bytes()
    assert (out / "trust.safetensors").is_file()
    shutil.rmtree(out)


def test_ner_errors_list_gold_and_predicted_entities_per_sentence():
    from lmkernel.evaluation.analysis import analyze
    from lmkernel.tasks import get_task
    from lmkernel.tasks.base import Example

    tags = ["O", "B-PER", "I-PER", "B-LOC"]
    sentences = [["Anna", "Lee", "lives", "in", "Paris"], ["Bob", "runs"]]
    examples = [Example(" ".join(s), None, "t.conll", i + 1, {"tokens": s}) for i, s in enumerate(sentences)]
    # sentence 0 in two windows (words 0-2, 3-4); sentence 1 in one; rows in the loop's (length) order
    features = [{"example": 0}, {"example": 0}, {"example": 1}]
    kept = {"index": [2, 0, 1], "gold": [[1, 0], [1, 2, 0], [0, 3]], "pred": [[1, 0], [1, 0, 0], [0, 0]]}
    a = analyze(get_task("ner"), "test", examples, features, kept, tags)
    assert len(a.errors) == 1 and a.errors[0]["line"] == 1
    assert a.errors[0]["gold"] == [{"type": "PER", "text": "Anna Lee", "start": 0, "end": 2},
                                   {"type": "LOC", "text": "Paris", "start": 4, "end": 5}]
    assert a.errors[0]["predicted"] == [{"type": "PER", "text": "Anna", "start": 0, "end": 1}]
    assert a.calibration is None and set(a.slices) == {"script", "length"}
