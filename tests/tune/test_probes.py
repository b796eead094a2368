"""Probes: a search trial reports its validation metric at quarters of each epoch, at points comparable across
batch sizes, so the pruner can stop it mid-epoch; the trial's own result is the one it has without probes."""

from __future__ import annotations

import time

import optuna

from lmkernel.catalog import read_progress
from lmkernel.search.pool import WorkerPool
from lmkernel.search.runner import Search
from lmkernel.search.study import PROBES
from lmkernel.training.probes import PROBE_ROWS, probe_rows, probe_steps


def _run(pool, n, root, spec_file, sets, probes):
    job = pool.start(n, root / f"{n:04d}", spec_file, sets, "accuracy", None, probes)
    deadline = time.monotonic() + 180
    seen = []
    while not job.finished():
        assert time.monotonic() < deadline, "trial did not finish"
        seen += job.new_evals()
        time.sleep(0.1)
    return job, seen + job.new_evals()


def _evals(run_dir):
    return [(e["step"], e["metrics"]) for e in read_progress(run_dir) if e["event"] == "eval"]


def test_probe_steps_fall_at_fractions_of_an_epoch():
    assert probe_steps(10, 4) == {3: 1, 5: 2, 8: 3}  # rounded up: never before its share of the data
    assert probe_steps(5, 4) == {2: 1, 3: 2, 4: 3}
    assert probe_steps(2, 4) == {1: 1}  # an epoch too short for every quarter keeps the ones it can
    assert probe_steps(10, 0) == {} == probe_steps(10, 1)


def test_a_probe_scores_a_fixed_sample_of_a_large_validation_split():
    rows = [{"input_ids": [i]} for i in range(PROBE_ROWS * 3)]
    sample = probe_rows(rows)
    assert len(sample) == PROBE_ROWS and sample == probe_rows(list(rows))  # the same rows in every trial
    assert sample != rows[:PROBE_ROWS]  # a sample across the split, not its head (a file may be sorted by label)
    assert probe_rows(rows[:40]) == rows[:40]  # a small split is scored whole


def test_a_trial_reports_each_quarter_epoch_at_the_same_points_whatever_its_batch_size(spec_file, tmp_path):
    pool = WorkerPool(1, tmp_path / "pool")
    try:
        b16, at16 = _run(pool, 0, tmp_path / "pool", spec_file, ["train.epochs=2", "train.batch_size=16"], PROBES)
        b32, at32 = _run(pool, 1, tmp_path / "pool", spec_file, ["train.epochs=2", "train.batch_size=32"], PROBES)
        plain, at_plain = _run(pool, 2, tmp_path / "pool", spec_file, ["train.epochs=2", "train.batch_size=16"], 0)
    finally:
        pool.close()
    points = [25, 50, 75, 100, 125, 150, 175, 200]  # 10 and 5 optimizer steps per epoch: the same points
    assert [a for a, _, _ in at16] == points == [a for a, _, _ in at32]
    assert [last for _, _, last in at16] == [False] * 7 + [True]  # only the run's end is its last evaluation
    assert [a for a, _, _ in at_plain] == [100, 200]
    # the probes change nothing the run keeps: same evaluations, same best value, to the last digit
    assert _evals(b16.run_dir) == _evals(plain.run_dir)
    assert b16.outcome() == plain.outcome() and b16.outcome()[0] is not None


def test_spec_eval_every_turns_the_probes_off(spec_file, tmp_path):
    pool = WorkerPool(1, tmp_path / "pool")
    try:
        _, seen = _run(pool, 0, tmp_path / "pool", spec_file, ["train.epochs=1", "train.eval_every=5"], PROBES)
    finally:
        pool.close()
    assert [a for a, _, _ in seen] == [50, 100]  # the spec's own evaluations, no probes beside them


class _AlwaysPrune(optuna.pruners.BasePruner):
    def prune(self, study, trial) -> bool:
        return True


def test_a_trial_pruned_at_its_first_probe_stops_mid_epoch(spec_file, tmp_path):
    study = optuna.create_study(direction="maximize", pruner=_AlwaysPrune())
    search = Search.__new__(Search)  # the runner's follow() with a study that prunes at once
    search.study, search.metric, search.log = study, "accuracy", lambda _: None
    trial = study.ask()
    pool = WorkerPool(1, tmp_path / "pool")
    try:  # batch 1: 160 optimizer steps in the epoch, the first probe after 40
        job = pool.start(0, tmp_path / "pool" / "0000", spec_file, ["train.epochs=1", "train.batch_size=1"],
                         "accuracy", None, PROBES)
        deadline = time.monotonic() + 180
        while not search.follow(trial, job):
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        pool.close()
    assert study.trials[0].state == optuna.trial.TrialState.PRUNED
    assert study.trials[0].intermediate_values == {25: study.trials[0].intermediate_values[25]}
    events = [e["event"] for e in read_progress(job.run_dir)]
    assert "probe" in events and "eval" not in events  # stopped before the epoch's end evaluation
    assert job.result["error"] == "stopped by the search"
