"""Trust fixtures: a tiny classification artifact (random head, no training) with a drift reference; for the
guards, the serving tests' tiny classification and chat artifacts, shared rather than rebuilt."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
from trust_helpers import EN

LABELS = ["negative", "positive"]


@pytest.fixture(scope="session")
def tiny_cls_run(tiny_bert, tmp_path_factory) -> Path:
    import torch

    import lmkernel
    from lmkernel.artifact import save_artifact
    from lmkernel.models.resolve import load_tokenizer
    from lmkernel.tasks import get_task
    from lmkernel.trust.drift import build_reference

    torch.manual_seed(0)
    model = get_task("classification").build_model(tiny_bert, LABELS)
    run = tmp_path_factory.mktemp("trust") / "tiny-run"
    card = {"task": "classification", "labels": LABELS, "base_model": str(tiny_bert), "max_length": 64}
    save_artifact(run / "model", model, load_tokenizer(tiny_bert), card)
    texts = EN * 30
    rows = lmkernel.load(run).predict(texts)
    ref = build_reference([r["label"] for r in rows], [r["score"] for r in rows], texts)
    (run / "model" / "trust.json").write_text(json.dumps({"version": 1, "reference": ref}), encoding="utf-8")
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
