"""Few-shot classification (tuning.method: fewshot): pair sampler, heads, a tiny end-to-end run, refusals."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

import lmkernel
from lmkernel.errors import LmkError
from lmkernel.tuning.fewshot_pairs import check_classes, sample_pairs
from lmkernel.tuning.fewshot_train import logistic_head, prototype_head
from tests.clikit import cli
from tests.datakit import write_csv


def test_pairs_are_bounded_and_balanced_whatever_the_class_count():
    labels = [c for c in range(77) for _ in range(8)]  # BANKING77 at 8 per class
    pairs = sample_pairs(labels, pairs_per_example=20, max_pairs=None, seed=0)
    assert len(pairs) == 77 * 8 * 20  # grows with the examples, not with the classes squared
    targets = Counter(t for _, _, t in pairs)
    assert targets[1.0] == targets[0.0] == 77 * 8 * 10
    assert all((labels[i] == labels[j]) == (t == 1.0) for i, j, t in pairs)
    assert all(i != j for i, j, _ in pairs)  # never an example with itself
    assert Counter(i for i, _, _ in pairs) == Counter({i: 20 for i in range(len(labels))})
    assert pairs == sample_pairs(labels, 20, None, seed=0)  # deterministic for a seed


def test_pair_cap_keeps_the_balance():
    labels = [0] * 50 + [1] * 50
    pairs = sample_pairs(labels, pairs_per_example=20, max_pairs=301, seed=1)
    targets = Counter(t for _, _, t in pairs)
    assert len(pairs) == 301 and targets[1.0] == 150 and targets[0.0] == 151


def test_a_class_with_one_example_is_a_clear_error():
    with pytest.raises(LmkError) as e:
        check_classes([0, 0, 1, 2, 2], ["a", "b", "c"])
    assert "'b'" in e.value.what and "positive pair" in e.value.what and "prototype" in e.value.fix
    with pytest.raises(LmkError) as e:  # more classes than examples allow: every class alone
        check_classes([0, 1, 2], ["a", "b", "c"])
    assert "every one of the 3 classes has a single training example" in e.value.what
    check_classes([0, 0, 1, 1], ["a", "b"])  # two each: fine


def test_prototype_head_picks_the_nearest_class_mean():
    vectors = np.array([[1, 0.1], [1, -0.1], [0.1, 1], [-0.1, 1]], dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    weight, bias = prototype_head(vectors, [0, 0, 1, 1], 3, scale=20.0)
    logits = np.array([[0.9, 0.2], [0.3, 0.95]]) @ weight.T + bias
    assert logits.argmax(1).tolist() == [0, 1]
    assert np.allclose(np.linalg.norm(weight[:2], axis=1), 20.0)  # unit prototypes times the scale
    assert bias[2] < -1e3  # a class with no examples never wins


def test_logistic_head_matches_scikit_learn_probabilities():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 5)).astype(np.float32)
    y = (x[:, 0] > 0).astype(int).tolist()
    weight, bias = logistic_head(x, y, 2, c=1.0, seed=0)
    logits = x @ weight.T + bias
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    want = LogisticRegression(C=1.0, max_iter=1000, random_state=0).fit(x, y).predict_proba(x)
    assert np.allclose(probs, want, atol=1e-5)
    y3 = [i % 3 for i in range(40)]
    weight3, bias3 = logistic_head(x, y3, 3, c=1.0, seed=0)
    want3 = LogisticRegression(C=1.0, max_iter=1000, random_state=0).fit(x, y3).predict(x)
    assert ((x @ weight3.T + bias3).argmax(1) == want3).all()


def _few_shot_spec(tmp_path: Path, model: Path, extra: str = "", rows=None) -> Path:
    words = [("the film was great", "positive"), ("the hotel was awful", "negative"),
             ("the book was lovely", "positive"), ("the room was bad", "negative")]
    write_csv(tmp_path / "data" / "train.csv", rows or [words[i % 4] for i in range(16)])
    write_csv(tmp_path / "data" / "dev.csv", [words[i % 4] for i in range(8)])
    spec = tmp_path / "spec.yaml"
    spec.write_text(f"""task: {{type: classification}}
data: {{train: data/train.csv, validation: data/dev.csv, max_length: 32}}
model: {{name: {model}}}
tuning: {{method: fewshot, fewshot: {{pairs_per_example: 8, batch_size: 8{extra}}}}}
train: {{lr: 1e-3, precision: fp32, log_every: 1}}
output: {{dir: runs/fs}}
""", encoding="utf-8")
    return spec


def test_run_then_predict_eval_and_load_agree(tmp_path, tiny_bert, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = _few_shot_spec(tmp_path, tiny_bert)
    out = cli("run", str(spec), "-q")
    assert "validation: accuracy=" in out.output
    run_dir = tmp_path / "runs" / "fs"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["validation"]["accuracy"] == 1.0  # four distinct sentences, two classes
    card = json.loads((run_dir / "model" / "lmkernel.json").read_text())
    assert card["tuning"] == "fewshot" and card["weights"] == "adapter"
    assert (run_dir / "model" / "fewshot.safetensors").is_file()
    events = [json.loads(line)["event"] for line in (run_dir / "progress.jsonl").read_text().splitlines()]
    assert events[0] == "start" and "train" in events and events[-1] == "end"
    assert "| validation |" in (run_dir / "report.md").read_text() or "accuracy" in (run_dir / "report.md").read_text()

    texts = ["the film was great", "the room was bad"]
    rows = [json.loads(line) for line in cli("predict", str(run_dir), *texts, "--json").output.strip().splitlines()]
    model = lmkernel.load(run_dir)
    loaded = model.predict(texts)
    assert [r["label"] for r in rows] == [r["label"] for r in loaded] == ["positive", "negative"]
    for r, m in zip(rows, loaded):
        assert r["probabilities"]["positive"] == pytest.approx(m["probabilities"]["positive"], abs=1e-5)
    cli("eval", str(run_dir), "--data", str(tmp_path / "data" / "dev.csv"), "--out", str(tmp_path / "ev"), "-q")
    again = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert again["eval"]["loss"] == pytest.approx(metrics["validation"]["loss"], rel=1e-4)

    from lmkernel.serve.predictor import ClassifierPredictor

    predictor = ClassifierPredictor(lmkernel.load(run_dir))  # what `lmkernel serve` answers with
    served = predictor(predictor.encode(texts, truncate=False))
    for s, m in zip(served, loaded):
        assert s["probabilities"]["positive"] == pytest.approx(m["probabilities"]["positive"], abs=1e-4)
    explained = model.explain(["the film was great"])
    assert explained[0]["label"] == "positive" and explained[0]["words"]


def test_prototype_head_trains_nothing(tmp_path, tiny_bert, monkeypatch):
    import torch

    monkeypatch.chdir(tmp_path)
    spec = _few_shot_spec(tmp_path, tiny_bert, extra=", head: prototype")
    lmkernel.run(spec, progress=False)
    model = lmkernel.load(tmp_path / "runs" / "fs")
    from transformers import AutoModel

    base = AutoModel.from_pretrained(str(tiny_bert))
    name, param = next(iter(base.embeddings.word_embeddings.named_parameters()))
    assert torch.equal(model.model.encoder.embeddings.word_embeddings.weight, param)  # the encoder is untouched
    assert [p["label"] for p in model.predict(["the film was great", "the room was bad"])] == ["positive", "negative"]


def test_one_example_per_class_is_refused_before_training(tmp_path, tiny_bert, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rows = [("the film was great", "positive"), ("the hotel was awful", "negative"), ("the room was bad", "negative")]
    spec = _few_shot_spec(tmp_path, tiny_bert, rows=rows)
    out = cli("run", str(spec), "-q", code=2)
    assert "single training example" in out.output and "'positive'" in out.output
    assert "tuning.fewshot.head: prototype" in out.output


def test_refused_for_ner_and_for_a_decoder(tmp_path, tiny_bert, tiny_llama, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = _few_shot_spec(tmp_path, tiny_bert)
    out = cli("validate", str(spec), "--set", "task.type=ner", code=2)
    assert "'fewshot' does not apply to task 'ner'" in out.output
    spec = _few_shot_spec(tmp_path, tiny_llama)
    out = cli("run", str(spec), "-q", code=2)
    assert "needs an encoder backbone" in out.output and "causal language model" in out.output
