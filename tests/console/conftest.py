"""Console fixtures: a folder with one finished classification run and one chat run, and its data."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from datakit import make_rows, write_csv

KEY = "console-test-key"


def spec_text(model: Path, **train: object) -> str:
    """A classification spec on the tiny BERT; data paths relative to the console's starting folder."""
    settings = {"epochs": 2, "batch_size": 16, "lr": 3e-3, "log_every": 2, "precision": "fp32", **train}
    return ("task: {type: classification}\n"
            "data: {train: data/train.csv, validation: data/dev.csv, test: data/test.csv}\n"
            f"model: {{name: {model}}}\ntuning: {{method: full}}\ntrain: {json.dumps(settings)}\n")


@pytest.fixture(scope="session")
def console_home(tiny_bert, tiny_llama, tmp_path_factory) -> Path:
    """``home/`` (where the console starts: data/) with ``home/runs/tiny`` (done) and ``home/runs/chat``."""
    import lmkernel

    home = tmp_path_factory.mktemp("console-home")
    write_csv(home / "data" / "train.csv", make_rows(160, seed=1))
    write_csv(home / "data" / "dev.csv", make_rows(40, seed=2))
    write_csv(home / "data" / "test.csv", make_rows(40, seed=3))
    spec = home / "tiny.yaml"
    spec.write_text(spec_text(tiny_bert) + f"output: {{dir: {home / 'runs' / 'tiny'}}}\n", encoding="utf-8")
    lmkernel.run(spec, progress=False)
    chat = home / "runs" / "chat"
    shutil.copytree(tiny_llama, chat / "model")
    card = {"task": "chat", "labels": [], "weights": "full", "format": 1, "task_options": {},
            "base_model": str(tiny_llama)}
    (chat / "model" / "lmkernel.json").write_text(json.dumps(card), encoding="utf-8")
    (chat / "spec.yaml").write_text(f"task: {{type: chat}}\nmodel: {{name: {tiny_llama}}}\n", encoding="utf-8")
    return home
