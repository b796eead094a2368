"""Serving fixtures: one tiny classification artifact per session and a ready app around it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from serve_helpers import LABELS, load_chat, serving

from lmkernel.serve.predictor import ClassifierPredictor


@pytest.fixture(scope="session")
def tiny_run(tiny_bert, tmp_path_factory) -> Path:
    """A classification artifact on the tiny BERT with a random head: no training, a second to build."""
    import torch

    from lmkernel.artifact import save_artifact
    from lmkernel.models.resolve import load_tokenizer
    from lmkernel.tasks import get_task

    torch.manual_seed(0)
    model = get_task("classification").build_model(tiny_bert, LABELS)
    run = tmp_path_factory.mktemp("serve") / "tiny-run"
    card = {"task": "classification", "labels": LABELS, "base_model": str(tiny_bert), "max_length": 64}
    save_artifact(run / "model", model, load_tokenizer(tiny_bert), card)
    return run


@pytest.fixture(scope="session")
def tiny_model(tiny_run):
    import lmkernel

    return lmkernel.load(tiny_run)


@pytest.fixture()
def tiny_client(tiny_model) -> Iterator[TestClient]:
    with serving(lambda: ClassifierPredictor(tiny_model), max_wait_ms=2) as client:
        yield client


@pytest.fixture(scope="session")
def chat_run(tiny_llama, tmp_path_factory) -> Path:
    """A chat artifact on the tiny Llama: its HF weights and tokenizer plus an lmkernel card."""
    import json
    import shutil

    run = tmp_path_factory.mktemp("serve-chat") / "tiny-chat"
    shutil.copytree(tiny_llama, run / "model")
    card = {"task": "chat", "labels": [], "weights": "full", "format": 1, "task_options": {},
            "base_model": str(tiny_llama)}
    (run / "model" / "lmkernel.json").write_text(json.dumps(card), encoding="utf-8")
    return run


@pytest.fixture(scope="session")
def chat_model(chat_run):
    """The chat artifact loaded: by ``lmkernel.load`` once task ``chat`` is registered, else directly."""
    return load_chat(chat_run)
