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


def make_study(folder: Path) -> None:
    """A study as ``lmkernel tune`` leaves it mid-search, built with optuna directly: two complete trials, one
    pruned, one failed and one running (intermediate value reported, its run dir's progress.jsonl at step 5)."""
    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution
    from optuna.trial import TrialState

    from lmkernel.search.study import DB, NAME

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    folder.mkdir(parents=True, exist_ok=True)
    study = optuna.create_study(storage=f"sqlite:///{folder / DB}", study_name=NAME, direction="maximize")
    study.set_user_attr("metric", "accuracy")
    space = {"train.lr": FloatDistribution(1e-4, 1e-2, log=True), "train.batch_size": CategoricalDistribution([16, 32])}
    for i, (curve, end) in enumerate([([0.55, 0.6], TrialState.COMPLETE), ([0.4], TrialState.PRUNED),
                                      ([], TrialState.FAIL), ([0.62, 0.7], TrialState.COMPLETE), ([0.65], None)]):
        trial = study.enqueue_trial({"train.lr": 10 ** -(2 + i / 4), "train.batch_size": 16 * (1 + i % 2)}) or \
            study.ask(space)
        run_dir = folder / "trials" / f"{trial.number:04d}"
        run_dir.mkdir(parents=True)
        trial.set_user_attr("run_dir", str(run_dir))
        for at, value in enumerate(curve, start=1):
            trial.report(value, 100 * at)
        if end is None:
            (run_dir / "progress.jsonl").write_text(json.dumps({"event": "train", "step": 5, "total_steps": 20,
                                                               "train_loss": 0.5}) + "\n", encoding="utf-8")
        else:
            study.tell(trial, curve[-1] if end == TrialState.COMPLETE else None, state=end)
