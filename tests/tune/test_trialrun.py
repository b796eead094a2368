"""A search trial (`lmkernel train --trial`) ends with metrics.json alone, and saves its model only when it beats
the search's best so far."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from lmkernel.search.report import best_trial
from lmkernel.search.trialrun import TrialMode, best_eval
from tests.clikit import cli


def _train(spec_file, *extra: str):
    cli("train", spec_file, "-q", "--trial", "--set", "train.epochs=2", *extra)
    return spec_file.parent / "runs" / "tiny"


def test_a_trial_run_dir_has_its_metrics_and_model_but_no_report(spec_file, monkeypatch):
    monkeypatch.chdir(spec_file.parent)
    run_dir = _train(spec_file)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    progress = [json.loads(line) for line in (run_dir / "progress.jsonl").read_text().splitlines()]
    end = progress[-1]
    assert end["event"] == "end"
    assert metrics["training"]["best accuracy"] == end["best_metric"] == metrics["validation"]["accuracy"]
    assert metrics["accuracy"] == end["best_metric"] and metrics["trial"]["model_saved"] is True
    assert (run_dir / "model" / "lmkernel.json").is_file()  # the first trial of a search may be its best
    card = json.loads((run_dir / "model" / "lmkernel.json").read_text())
    assert card["metrics"]["validation"]["accuracy"] == end["best_metric"]
    for skipped in ("report.md", "report.html", "plots", "errors.csv", "errors.jsonl", "checkpoints"):
        assert not (run_dir / skipped).exists(), skipped
    assert not (run_dir / "model" / "trust.json").exists()  # no trust profile: a pass over the data nobody reads


def test_a_trial_that_cannot_beat_the_best_keeps_no_model(spec_file, monkeypatch):
    monkeypatch.chdir(spec_file.parent)
    run_dir = _train(spec_file, "--trial-beat", "1.5")  # accuracy never beats 1.5
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["trial"] == {"model_saved": False, "beat": 1.5}
    assert "validation" in metrics and not (run_dir / "model").exists()


def test_keeps_model_follows_the_metric_direction():
    assert TrialMode().keeps_model(0.1, "accuracy")
    assert TrialMode(beat=0.8).keeps_model(0.81, "accuracy") and not TrialMode(beat=0.8).keeps_model(0.8, "accuracy")
    assert TrialMode(beat=0.5).keeps_model(0.4, "loss") and not TrialMode(beat=0.5).keeps_model(0.6, "loss")
    assert not TrialMode().keeps_model(None, "accuracy")  # no evaluation: nothing to compare
    history = [{"step": 2, "train_loss": 1.0}, {"step": 2, "eval": {"accuracy": 0.5}}, {"step": 4, "eval": {"a": 1}}]
    assert best_eval(history, 2) == {"accuracy": 0.5} and best_eval(history, None) == {}


@pytest.mark.parametrize(("direction", "want"), [("MAXIMIZE", 1), ("MINIMIZE", 0)])
def test_the_best_trial_is_the_earliest_of_the_best_value(direction, want):
    from optuna.trial import TrialState

    trials = [SimpleNamespace(number=n, value=v) for n, v in ((0, 0.5), (1, 0.9), (2, 0.9), (3, 0.7))]
    study = SimpleNamespace(direction=SimpleNamespace(name=direction),
                            get_trials=lambda deepcopy, states: trials if states == (TrialState.COMPLETE,) else [])
    assert best_trial(study).number == want  # trial 2 ties trial 1 but started after it: only trial 1 saved
