"""Tiny studies on the tiny BERT: a full search via the CLI, resume after a kill, pruning, parallel trials."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from lmkernel.catalog import read_progress
from lmkernel.cli import app
from lmkernel.errors import LmkError
from lmkernel.search import study as study_mod
from lmkernel.search import tune
from lmkernel.spec import load_spec

SPACE = """train.lr: {type: float, low: 1.0e-3, high: 1.0e-2, log: true}
train.batch_size: {type: categorical, choices: [16, 32]}
"""


@pytest.fixture()
def space_file(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text(SPACE, encoding="utf-8")
    return path


def _study(study_dir):
    import optuna

    return optuna.load_study(study_name=study_mod.NAME, storage=f"sqlite:///{study_dir / study_mod.DB}")


def test_parallel_trials_then_a_rerun_that_continues_and_reports(spec_file, space_file, tmp_path):
    study_dir = tmp_path / "study"
    first = tune(spec_file, 2, space_file, parallel=2, study_dir=study_dir, pruner="none")
    spans = [(read_progress(t["run_dir"])[0]["time"], read_progress(t["run_dir"])[-1]["time"])
             for t in first["trials"]]
    assert spans[0][0] < spans[1][1] and spans[1][0] < spans[0][1]  # two processes at once
    result = CliRunner().invoke(app, ["tune", str(spec_file), "--trials", "3", "--space", str(space_file),
                                      "--study-dir", str(study_dir), "--pruner", "none", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    assert [t["number"] for t in summary["trials"]] == [0, 1, 2]  # the rerun added one trial, not three
    assert summary["counts"] == {"complete": 3} and summary["direction"] == "maximize"
    assert all(t["cpu_seconds"] > 0 for t in summary["trials"])
    assert summary["trials"][2]["params"] != summary["trials"][0]["params"]  # the resumed sampler draws anew
    best = summary["best"]
    assert best["value"] == max(t["value"] for t in summary["trials"])
    spec = load_spec(study_dir / "best.yaml", [])  # loadable by `lmkernel run`
    assert spec.train.lr == pytest.approx(best["params"]["train.lr"])
    assert spec.train.batch_size == best["params"]["train.batch_size"]
    assert spec.train.epochs == 3 and "tiny-bert" in spec.model.name  # the rest of the spec kept
    report = (study_dir / "report.md").read_text(encoding="utf-8")
    assert "| # | state | train.lr | train.batch_size |" in report and "history.png" in report
    assert (study_dir / "history.png").read_bytes()[:4] == b"\x89PNG"
    assert (study_dir / "importance.png").exists() and set(summary["importances"]) <= {"train.lr", "train.batch_size"}
    for t in summary["trials"]:  # each trial trained in its own run dir, validation only, with no report
        assert any(e["event"] == "end" for e in read_progress(t["run_dir"]))
        assert "test" not in json.loads((tmp_path / t["run_dir"] / "metrics.json").read_text())
        assert not (tmp_path / t["run_dir"] / "report.md").exists()
    assert (tmp_path / best["run_dir"] / "model" / "lmkernel.json").is_file()  # the best trial kept its model
    from lmkernel.console.app import create_console
    from lmkernel.console.studies import read_study

    seen = read_study(create_console(tmp_path).state.console, study_dir)  # what the Tuning view shows
    assert [t["number"] for t in seen["trials"]] == [0, 1, 2] and seen["finished"] and not seen["searching"]
    assert seen["best"]["number"] == best["number"] and seen["best"]["value"] == pytest.approx(best["value"])
    assert seen["direction"] == "maximize" and len(seen["history"]) == 3


def test_a_trial_left_running_by_a_kill_is_marked_and_run_again(spec_file, space_file, tmp_path):
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    study_dir = tmp_path / "study"
    study_dir.mkdir()
    study = study_mod.open_study(study_dir, "maximize", "accuracy", 42, "none")
    trial = study.ask({"train.lr": FloatDistribution(1e-3, 1e-2, log=True),
                       "train.batch_size": CategoricalDistribution([16, 32])})
    orphan_dir = str(study_dir / "trials" / "0000")
    # the killed search's trial process, still running: the resume must end it
    orphan = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", f"output.dir={orphan_dir}"],
                              start_new_session=True)
    trial.set_user_attr("pid", orphan.pid)
    trial.set_user_attr("run_dir", orphan_dir)
    del study  # the search was killed here: trial 0 stays RUNNING in study.db
    summary = tune(spec_file, 1, space_file, study_dir=study_dir, pruner="none")
    assert orphan.wait(timeout=10) != 0
    states = {t["number"]: t["state"] for t in summary["trials"]}
    assert states == {0: "interrupted", 1: "complete"}
    retry = _study(study_dir).trials[1]
    assert retry.params == trial.params and retry.user_attrs["retry_of"] == 0


def test_the_pruner_stops_a_trial_from_its_progress(spec_file, space_file, tmp_path, monkeypatch):
    import optuna

    class AlwaysPrune(optuna.pruners.BasePruner):
        """Stops every trial at its first intermediate value."""

        def prune(self, study, trial) -> bool:
            return bool(trial.intermediate_values)

    monkeypatch.setattr(study_mod, "make_pruner", lambda name: AlwaysPrune())
    with pytest.raises(LmkError, match="no trial finished: 1 pruned"):  # nothing left to call best
        tune(spec_file, 1, space_file, study_dir=tmp_path / "study", sets=["train.epochs=40"])
    summary = json.loads((tmp_path / "study" / "summary.json").read_text(encoding="utf-8"))
    (trial,) = summary["trials"]
    assert trial["state"] == "pruned" and trial["reached_pct_epoch"] == 25  # at its first probe, mid-epoch
    events = read_progress(trial["run_dir"])
    assert [e["event"] for e in events].count("eval") < 40 and not any(e["event"] == "end" for e in events)
    assert summary["best"] is None and "| 0 | pruned |" in (tmp_path / "study" / "report.md").read_text()


def test_a_point_already_measured_is_answered_without_training(spec_file, tmp_path):
    space = tmp_path / "one.yaml"
    space.write_text("train.batch_size: {type: categorical, choices: [32]}\n", encoding="utf-8")
    summary = tune(spec_file, 2, space, study_dir=tmp_path / "study", pruner="none")
    first, second = summary["trials"]
    assert second["repeat_of"] == 0 and second["value"] == first["value"] and second["cpu_seconds"] == 0
    assert not (tmp_path / "study" / "trials" / "0001").exists()


def test_bad_flags_and_a_busy_study_dir(spec_file, tmp_path):
    with pytest.raises(LmkError, match="unknown pruner"):
        tune(spec_file, 1, pruner="asha", study_dir=tmp_path / "s")
    with pytest.raises(LmkError, match="at least 1"):
        tune(spec_file, 0, study_dir=tmp_path / "s")
    study_mod.lock_study(tmp_path / "busy")
    try:
        done = subprocess.run([sys.executable, "-c", "from pathlib import Path; from lmkernel.search.study import "
                               f"lock_study; lock_study(Path({str(tmp_path / 'busy')!r}))"], capture_output=True,
                              text=True, timeout=60)
        assert "another lmkernel tune" in done.stderr
    finally:
        study_mod.unlock_study(tmp_path / "busy")
