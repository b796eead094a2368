"""Trial workers (search/worker.py, search/pool.py): one process runs many trials, each as `lmkernel train --trial`
would alone; a failing trial is recorded and the next one runs; a killed search resumes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from lmkernel.catalog import read_progress
from lmkernel.search import tune
from lmkernel.search.pool import WorkerPool


def _wait(jobs, limit=180.0):
    deadline = time.monotonic() + limit
    while not all(j.finished() for j in jobs):
        assert time.monotonic() < deadline, "trial did not finish"
        time.sleep(0.1)


def _in_turn(root, spec_file, trials, env=None):
    """Each trial (its --set values, the value to beat) on one worker, one after another: (the pool, the trials)."""
    pool = WorkerPool(1, root, env)
    jobs = []
    try:
        for n, (sets, beat) in enumerate(trials):
            jobs.append(pool.start(n, root / f"{n:04d}", spec_file, sets, "accuracy", beat))
            _wait(jobs[-1:])
    finally:
        pool.close()
    return pool, jobs


def _evals(run_dir):
    return [(e["step"], e["metrics"]) for e in read_progress(run_dir) if e["event"] == "eval"]


def test_a_worker_runs_trials_in_sequence_with_the_results_of_a_trial_run_alone(spec_file, tmp_path):
    pool, (first, second) = _in_turn(tmp_path / "pool", spec_file, [(["train.lr=1e-2", "train.batch_size=32"], None),
                                                                     (["train.epochs=2"], 0.0)])
    assert first.pid == second.pid and pool.started == 1  # one process, two trials
    assert first.outcome()[0] is not None and first.cpu_seconds > 0 and second.cpu_seconds > 0
    alone = tmp_path / "alone"  # the same trial as its own process, the way a trial ran before workers
    done = subprocess.run([sys.executable, "-m", "lmkernel.cli", "train", str(spec_file), "--quiet", "--trial",
                           "--trial-beat", "0.0", "--set", "train.epochs=2", "--set", f"output.dir={alone}"],
                          capture_output=True, text=True, timeout=300, env=dict(os.environ, HF_HUB_OFFLINE="1"))
    assert done.returncode == 0, done.stderr
    assert _evals(second.run_dir) == _evals(alone) and len(_evals(alone)) == 2  # same values, to the last digit
    assert second.outcome() == (read_progress(alone)[-1]["best_metric"], "")
    ours, theirs = (json.loads((d / "metrics.json").read_text()) for d in (second.run_dir, alone))
    for m in (ours, theirs):
        del m["training"]["train time (s)"]  # the one figure that is a wall-clock time
    assert ours == theirs


def test_a_failing_trial_is_recorded_and_the_next_one_runs(spec_file, tmp_path):
    _, (diverged, unknown, fine) = _in_turn(tmp_path / "pool", spec_file, [
        (["train.lr=1e9"], None), (["train.metric=bleu"], None), (["train.epochs=1"], None)])
    value, why = diverged.outcome()
    assert value is None and "training loss became" in why  # raised mid-training: the trial fails, not the worker
    assert unknown.outcome()[0] is None and "train.metric" in unknown.outcome()[1]  # a bad config
    assert "Traceback" in (tmp_path / "pool" / "0000.log").read_text()  # the error is in the trial's own log
    assert fine.outcome()[0] is not None and fine.pid == diverged.pid == unknown.pid


def test_a_worker_that_dies_fails_its_trial_and_a_new_one_runs_the_next(spec_file, tmp_path):
    env = dict(os.environ, LMKERNEL_FAULT="step:4")  # the worker is SIGKILLed at optimizer step 4
    pool, (killed, short) = _in_turn(tmp_path / "pool", spec_file, [([], None), (["train.max_steps=3"], None)], env)
    value, why = killed.outcome()
    assert value is None and "worker exited (-9)" in why and killed.cpu_seconds > 0
    assert short.outcome()[0] is not None and short.pid != killed.pid and pool.started == 2


def test_a_pruned_trial_stops_and_its_worker_takes_the_next(spec_file, tmp_path):
    pool = WorkerPool(1, tmp_path / "pool")
    try:
        long = pool.start(0, tmp_path / "pool" / "0000", spec_file, ["train.epochs=200"], "accuracy")
        deadline = time.monotonic() + 180
        while not long.new_evals():
            assert time.monotonic() < deadline
            time.sleep(0.1)
        long.stop()
        after = pool.start(1, tmp_path / "pool" / "0001", spec_file, ["train.epochs=1"], "accuracy")
        _wait([after])
    finally:
        pool.close()
    assert long.result == {"ok": False, "error": "stopped by the search", "cpu_seconds": long.cpu_seconds}
    assert after.outcome()[0] is not None and after.pid == long.pid


def test_a_killed_search_resumes_and_its_worker_is_gone(spec_file, tmp_path):
    space = tmp_path / "space.yaml"
    space.write_text("train.batch_size: {type: categorical, choices: [16, 32]}\n", encoding="utf-8")
    study_dir = tmp_path / "study"
    search = subprocess.Popen([sys.executable, "-m", "lmkernel.cli", "tune", str(spec_file), "--trials", "2",
                               "--space", str(space), "--study-dir", str(study_dir), "--pruner", "none",
                               "--set", "train.epochs=200"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env=dict(os.environ, HF_HUB_OFFLINE="1"))
    deadline = time.monotonic() + 180
    while not any(e["event"] == "eval" for e in read_progress(study_dir / "trials" / "0000")):
        assert time.monotonic() < deadline and search.poll() is None
        time.sleep(0.2)
    os.kill(search.pid, signal.SIGKILL)
    search.wait(timeout=30)
    worker = _study_trials(study_dir)[0].user_attrs["pid"]
    summary = tune(spec_file, 1, space, study_dir=study_dir, pruner="none", sets=["train.epochs=1"])
    states = {t["number"]: t["state"] for t in summary["trials"]}
    assert states == {0: "interrupted", 1: "complete"}
    assert summary["trials"][1]["params"] == summary["trials"][0]["params"]  # the interrupted values, again
    assert not _alive(worker)  # the killed search's worker did not go on training trial 0


def _study_trials(study_dir):
    import optuna

    from lmkernel.search import study as study_mod

    return optuna.load_study(study_name=study_mod.NAME, storage=f"sqlite:///{study_dir / study_mod.DB}").trials


def _alive(pid: int) -> bool:
    try:
        status = open(f"/proc/{pid}/status", encoding="utf-8").read()
    except OSError:
        return False
    return "\nState:\tZ" not in status  # a zombie has ended
