"""The run directory: choose it (never overwriting an earlier run, never shared by two live runs),
create it with the resolved spec, and leave a finished run lean. Shared by every training command
(run, pretrain, compress)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import LmkError
from .spec import Spec, save_spec


@dataclass
class RunResult:
    run_dir: Path
    metrics: dict[str, Any]


LOCK = ".lock"  # flock'd by the run using the folder, so two concurrent runs never share one
_LEFT_BY_FAILED_START = {"spec.yaml", LOCK}  # a run that failed before training leaves only these
_held: dict[Path, int] = {}  # run folders this process has locked: fd of each .lock (the OS frees them at exit)


def _contents(path: Path) -> set[str]:
    try:
        return {p.name for p in path.iterdir()}
    except FileNotFoundError:
        return set()
    except OSError as e:
        raise LmkError(f"cannot use {path} as the run directory: {e.strerror or e}", where=str(path),
                       fix="set output.dir to a folder you can write to") from None


def _run_dir_in_use(path: Path) -> bool:
    """Holds an earlier run: anything beyond what a run that failed before training leaves (its spec)."""
    return bool(_contents(path) - _LEFT_BY_FAILED_START)


def _make_dir(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise LmkError(f"output.dir {path} is a file, not a folder", where="output.dir",
                       fix="set output.dir to a folder path (it is created if missing)") from None
    except OSError as e:
        raise LmkError(f"cannot create the run directory {path}: {e.strerror or e}", where="output.dir",
                       fix="set output.dir to a folder you can write to") from None


def _lock(path: Path) -> bool:
    """Create ``path`` and lock it for this process; False when another process's run holds it. A lock
    this process already holds belongs to an earlier run here that is over (runs in one process are
    sequential), so it is taken over: a notebook's failed run does not push the next one to NAME-2."""
    import fcntl

    if path.absolute() in _held:
        return True
    _make_dir(path)
    try:
        fd = os.open(path / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise LmkError(f"cannot create {path / LOCK}: {e.strerror or e}", where="output.dir",
                       fix="set output.dir to a folder you can write to") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return False
    _held[path.absolute()] = fd
    return True


def release(path: Path) -> None:
    """Unlock a run folder this process locked (the lock file stays: removing it races other lockers)."""
    fd = _held.pop(path.absolute(), None)
    if fd is not None:
        os.close(fd)


def choose_run_dir(wanted: Path, resume: bool) -> Path:
    """The run directory, created and locked: ``wanted``, or ``wanted-2``, ``-3``... so no earlier run is
    overwritten and no concurrent run shares it. A folder holding only the spec of a run that failed
    before training is reused."""
    if wanted.exists() and not wanted.is_dir():
        raise LmkError(f"output.dir {wanted} is a file, not a folder", where="output.dir",
                       fix="set output.dir to a folder path (it is created if missing)")
    if resume:
        if not (wanted / "checkpoints").exists():
            raise LmkError(f"nothing to resume in {wanted}: it has no checkpoints", where=str(wanted),
                           fix="run without --resume to start a new run (finished runs keep no checkpoint "
                           "unless train.keep_optimizer is true)")
        if not _lock(wanted):
            raise LmkError(f"another lmkernel run is using {wanted}", where=str(wanted),
                           fix="wait for it to finish (or stop it) before resuming")
        return wanted
    if _run_dir_in_use(wanted) and (wanted / "checkpoints").exists() and not (wanted / "metrics.json").exists():
        print(f"note: {wanted} holds an unfinished run; pass --resume to continue it. Starting a new run.")
    candidate, n = wanted, 1
    while True:
        if not (candidate.exists() and not candidate.is_dir()) and not _run_dir_in_use(candidate):
            if _lock(candidate):
                if not _run_dir_in_use(candidate):  # re-checked under the lock: a run may have just finished
                    return candidate
                release(candidate)
        n += 1
        candidate = wanted.with_name(f"{wanted.name}-{n}")


def start_run(spec: Spec, resume: bool):
    """Threads, the accelerator and the run directory (chosen on the main process, shared with the
    others), with the resolved spec saved in it: the first steps of every training command."""
    import torch
    from accelerate.utils import broadcast_object_list

    from .device import make_accelerator

    if spec.train.threads:
        torch.set_num_threads(spec.train.threads)
    accelerator = make_accelerator(spec.train.precision)
    holder = [choose_run_dir(Path(spec.output.dir), resume) if accelerator.is_main_process else None]
    if accelerator.num_processes > 1:
        broadcast_object_list(holder)
    run_dir = Path(holder[0])
    spec = spec.model_copy(deep=True)
    spec.output.dir = run_dir
    if accelerator.is_main_process:
        run_dir.mkdir(parents=True, exist_ok=True)
        save_spec(spec, run_dir / "spec.yaml")
    return accelerator, spec, run_dir


def cleanup(run_dir: Path, keep_optimizer: bool) -> None:
    """Finished runs stay lean: drop the resumable state unless asked to keep it; the folder is unlocked."""
    import shutil

    release(run_dir)
    root = run_dir / "checkpoints"
    if not root.exists():
        return
    (root / "best.safetensors").unlink(missing_ok=True)
    if not keep_optimizer:
        shutil.rmtree(root, ignore_errors=True)
