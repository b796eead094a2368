"""Run folder choice: a run that failed before training does not take the name, two live runs never
share a folder, and an unusable output.dir is a message, not a traceback."""

from __future__ import annotations

import fcntl
import os

import pytest

from lmkernel import rundir
from lmkernel.errors import LmkError
from lmkernel.rundir import choose_run_dir, cleanup


@pytest.fixture(autouse=True)
def _release_locks():
    yield
    for path in list(rundir._held):
        rundir.release(path)


def _failed_start(path):
    """What a run that failed reading its data leaves (in another process, now gone)."""
    path.mkdir(parents=True)
    (path / "spec.yaml").write_text("seed: 1\n", encoding="utf-8")
    (path / rundir.LOCK).touch()


def test_folder_left_by_a_failed_start_is_reused(tmp_path):
    wanted = tmp_path / "runs" / "exp"
    _failed_start(wanted)
    assert choose_run_dir(wanted, resume=False) == wanted


def test_failed_run_in_this_process_does_not_push_the_next_to_name_2(tmp_path):
    wanted = tmp_path / "exp"
    first = choose_run_dir(wanted, resume=False)  # locked by this process; the run then fails
    (first / "spec.yaml").write_text("seed: 1\n", encoding="utf-8")
    assert choose_run_dir(wanted, resume=False) == wanted


def test_finished_run_is_never_overwritten(tmp_path):
    wanted = tmp_path / "exp"
    _failed_start(wanted)
    (wanted / "metrics.json").write_text("{}", encoding="utf-8")
    assert choose_run_dir(wanted, resume=False) == tmp_path / "exp-2"


def test_live_run_holding_the_folder_sends_a_second_run_elsewhere(tmp_path):
    wanted = tmp_path / "exp"
    wanted.mkdir()
    fd = os.open(wanted / rundir.LOCK, os.O_RDWR | os.O_CREAT)  # another open file: another run's lock
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        assert choose_run_dir(wanted, resume=False) == tmp_path / "exp-2"
        with pytest.raises(LmkError, match="another lmkernel run is using"):
            (wanted / "checkpoints").mkdir()
            choose_run_dir(wanted, resume=True)
    finally:
        os.close(fd)


def test_chosen_folder_is_locked_until_cleanup(tmp_path):
    wanted = tmp_path / "exp"
    run = choose_run_dir(wanted, resume=False)
    fd = os.open(run / rundir.LOCK, os.O_RDWR)
    try:
        with pytest.raises(BlockingIOError):
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        cleanup(run, keep_optimizer=False)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # free now
    finally:
        os.close(fd)


def test_output_dir_that_is_a_file_is_a_clear_error(tmp_path):
    target = tmp_path / "taken"
    target.write_text("x", encoding="utf-8")
    with pytest.raises(LmkError, match="is a file, not a folder"):
        choose_run_dir(target, resume=False)
    with pytest.raises(LmkError, match="as the run directory: Not a directory"):
        choose_run_dir(target / "run", resume=False)  # its parent is a file


def test_pipeline_rerun_after_a_failure_before_training_keeps_the_name(tmp_path):
    import lmkernel

    spec = tmp_path / "exp.yaml"
    spec.write_text(f"data: {{train: missing.csv}}\noutput: {{dir: {tmp_path / 'out'}}}\n", encoding="utf-8")
    for _ in range(2):
        with pytest.raises(LmkError):
            lmkernel.run(spec)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exp.yaml", "out"]
