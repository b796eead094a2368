"""`lmkernel runs` and `lmkernel runs compare`: the table of runs, their status, metrics side by side."""

from __future__ import annotations

import json
import os

import pytest
from typer.testing import CliRunner

from lmkernel.catalog import describe, find_runs, history, is_locked, spec_differences, status
from lmkernel.cli import app

runner = CliRunner()


def cli(*args: str, code: int = 0):
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, result.output
    return result


@pytest.fixture()
def two_runs(spec_file, monkeypatch):
    monkeypatch.chdir(spec_file.parent)
    cli("run", str(spec_file), "-q", "--set", "train.precision=fp32", "--set", "output.dir=runs/a")
    cli("run", str(spec_file), "-q", "--set", "train.precision=fp32", "--set", "output.dir=runs/b",
        "--set", "train.lr=1e-4", "--set", "train.epochs=1")
    return spec_file.parent / "runs"


def test_list_shows_each_run_with_its_metrics_and_status(two_runs):
    out = cli("runs", str(two_runs)).output
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["run", "task", "model", "method"]
    body = {line.split()[0]: line for line in lines[2:]}
    assert set(body) == {"a", "b"} and all("done" in line and "classification" in line for line in body.values())
    rows = json.loads(cli("runs", str(two_runs), "--json").output)
    by_name = {r["name"]: r for r in rows}
    metrics = json.loads((two_runs / "a" / "metrics.json").read_text())
    assert by_name["a"]["validation"] == pytest.approx(metrics["validation"]["accuracy"])
    assert by_name["a"]["test"] == pytest.approx(metrics["test"]["accuracy"])
    assert by_name["a"]["size_bytes"] > 10_000 and by_name["a"]["steps"] == 30
    assert by_name["b"]["steps"] == 10 and by_name["a"]["metric"] == "accuracy"


def test_compare_puts_metrics_and_changed_settings_side_by_side(two_runs, tmp_path):
    png = tmp_path / "curves.png"
    out = cli("runs", "compare", str(two_runs / "a"), str(two_runs / "b"), "--png", str(png)).output
    assert "validation accuracy" in out and "train.lr" in out and "train.epochs" in out
    assert png.stat().st_size > 5_000 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = json.loads(cli("runs", "compare", str(two_runs / "a"), str(two_runs / "b"), "--json", "--png",
                          str(png)).output)
    assert data["runs"] == ["a", "b"] and data["settings"]["train.epochs"] == [3, 1]
    assert "output.dir" not in data["settings"]


def test_history_reads_progress_events(two_runs):
    h = history(two_runs / "a")
    steps = [r["step"] for r in h if "train_loss" in r]
    assert steps == sorted(steps) and len(steps) == 15  # log_every 2 over 30 steps
    assert [r["step"] for r in h if "eval" in r] == [10, 20, 30]


def test_status_of_young_failed_and_resumable_runs(tmp_path):
    run = tmp_path / "r"
    run.mkdir()
    (run / "spec.yaml").write_text("task: {type: classification}\n", encoding="utf-8")
    assert status(run) == ("incomplete", "never trained")
    (run / "progress.jsonl").write_text(json.dumps({"event": "start", "step": 0, "total_steps": 9}) + "\n"
                                        + json.dumps({"event": "error", "step": 3, "error": "boom"}) + "\n")
    assert status(run) == ("failed", "boom")
    (run / "checkpoints").mkdir()
    (run / "progress.jsonl").write_text(json.dumps({"event": "start", "step": 0, "total_steps": 9}) + "\n")
    assert status(run)[0] == "resumable"
    row = describe(run)
    assert row.task == "classification" and row.validation is None and row.size_bytes == 0


def test_a_locked_run_is_running(tmp_path):
    fcntl = pytest.importorskip("fcntl")
    run = tmp_path / "live"
    run.mkdir()
    (run / "spec.yaml").write_text("task: {type: classification}\n", encoding="utf-8")
    (run / "progress.jsonl").write_text(json.dumps({"event": "train", "step": 4, "total_steps": 20}) + "\n")
    fd = os.open(run / ".lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    try:
        assert is_locked(run) and status(run) == ("running", "step 4 of 20")
    finally:
        os.close(fd)
    assert not is_locked(run)


def test_find_runs_skips_model_folders_and_differences_ignore_output(tmp_path):
    for name in ("x", "group/y"):
        (tmp_path / name / "model").mkdir(parents=True)
        (tmp_path / name / "spec.yaml").write_text(f"train: {{lr: {0.1 if name == 'x' else 0.2}}}\n"
                                                   f"output: {{dir: {name}}}\n", encoding="utf-8")
    assert {p.name for p in find_runs(tmp_path)} == {"x", "y"}
    assert find_runs(tmp_path / "x") == [tmp_path / "x"]
    assert spec_differences([tmp_path / "x", tmp_path / "group" / "y"]) == {"train.lr": [0.1, 0.2]}


@pytest.mark.parametrize("args,message", [
    (["runs", "{tmp}/nope"], "no such folder"),
    (["runs", "compare", "{tmp}"], "compare needs two or more runs"),
    (["runs", "compare", "{tmp}", "{tmp}"], "not a run folder"),
    (["runs", "a", "b"], "runs takes one folder"),
])
def test_errors_say_what_and_how_to_fix(tmp_path, args, message):
    result = cli(*[a.format(tmp=tmp_path) for a in args], code=2)
    assert message in result.output and "fix:" in result.output and "Traceback" not in result.output


def test_empty_folder_and_help(tmp_path):
    assert "no runs under" in cli("runs", str(tmp_path)).output
    out = cli("runs", "--help").output
    assert "compare" in out and "--png" in out and "--json" in out
