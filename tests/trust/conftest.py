"""Fixtures of the explanation tests: a model whose reasons are known, and a quickly trained tiny run."""

from __future__ import annotations

from pathlib import Path

import pytest
from explain_helpers import LABELS, TRIGGERS, bag_model, sentiment_rows, write_csv


@pytest.fixture(scope="session")
def bert_tokenizer(tiny_bert):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_bert)


@pytest.fixture(scope="session")
def trigger_model(bert_tokenizer):
    """Labels decided by the planted triggers (English and Chinese); no trigger: neutral."""
    weights = {w: {lab: 4.0} for lab, ws in TRIGGERS.items() for w in ws}
    weights.update({"good": {"positive": 0.3}, "bad": {"negative": 0.3}})  # weak distractors
    return bag_model(bert_tokenizer, weights, LABELS, bias={"neutral": 1.0})


@pytest.fixture(scope="session")
def sentiment_run(tmp_path_factory, tiny_bert) -> Path:
    """A tiny BERT sentiment classifier, trained in a few seconds (for the CLI, server and bf16 tests)."""
    import lmkernel

    root = tmp_path_factory.mktemp("explain-run")
    write_csv(root / "train.csv", sentiment_rows(320, seed=1))
    write_csv(root / "dev.csv", sentiment_rows(30, seed=2))
    spec = root / "spec.yaml"
    spec.write_text(f"""task: {{type: classification}}
data: {{train: {root / 'train.csv'}, validation: {root / 'dev.csv'}}}
model: {{name: {tiny_bert}}}
tuning: {{method: full}}
train: {{epochs: 4, batch_size: 16, lr: 3e-3, log_every: 40, precision: fp32}}
output: {{dir: {root / 'run'}}}
seed: 0
""", encoding="utf-8")
    return Path(lmkernel.run(spec, final_eval=False, progress=False).run_dir)
