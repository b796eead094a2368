"""Trust fixtures: a tiny classification artifact (random head, no training) with a drift reference; for the
guards, the serving tests' tiny classification and chat artifacts, shared rather than rebuilt; for the
explanations, a model whose reasons are known and a quickly trained tiny run."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
from datakit import write_csv
from explain_helpers import LABELS as TRIGGER_LABELS
from explain_helpers import TRIGGERS, bag_model, sentiment_rows
from trust_helpers import EN, profile_json


@pytest.fixture(scope="session")
def tiny_cls_run(tiny_run, tmp_path_factory) -> Path:
    """The serving tests' tiny classifier (random head) with a drift reference of its own predictions."""
    import shutil

    import lmkernel
    from lmkernel.trust.drift import build_reference

    run = tmp_path_factory.mktemp("trust") / "tiny-run"
    shutil.copytree(tiny_run, run)
    texts = EN * 30
    rows = lmkernel.load(run).predict(texts)
    ref = build_reference([r["label"] for r in rows], [r["score"] for r in rows], texts)
    (run / "model" / "trust.json").write_text(profile_json(ref), encoding="utf-8")
    return run


_SERVE = Path(__file__).parents[1] / "serve"
sys.path.insert(0, str(_SERVE))
_spec = importlib.util.spec_from_file_location("serve_conftest_for_trust", _SERVE / "conftest.py")
_serve = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_serve)

tiny_run = _serve.tiny_run
tiny_model = _serve.tiny_model
chat_run = _serve.chat_run
chat_model = _serve.chat_model


@pytest.fixture(scope="session")
def bert_tokenizer(tiny_bert):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_bert)


@pytest.fixture(scope="session")
def trigger_model(bert_tokenizer):
    """Labels decided by the planted triggers (English and Chinese); no trigger: neutral."""
    weights = {w: {lab: 4.0} for lab, ws in TRIGGERS.items() for w in ws}
    weights.update({"good": {"positive": 0.3}, "bad": {"negative": 0.3}})  # weak distractors
    return bag_model(bert_tokenizer, weights, TRIGGER_LABELS, bias={"neutral": 1.0})


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
