"""Runs started from the page: ``python -m lmkernel.cli run SPEC`` as a child process in its own process group.

Each job keeps three files in ``<console folder>/.console/jobs``: ``NAME.yaml`` (the checked spec, absolute
paths), ``NAME.log`` (the run's output) and ``NAME.json`` (pid, command, times). Stop sends SIGTERM to the
group, so the run ends like a killed ``lmkernel run``: with a checkpoint it is resumable, and Resume runs the
same spec with ``--resume``. Progress is not tracked here: the page reads the run's ``progress.jsonl``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ..errors import LmkError
from ..fsutil import atomic_write_json, atomic_write_text
from .specs import check_name, spec_tree

STOP_WAIT_S = 10.0  # SIGTERM, then this long before SIGKILL


class Jobs:
    """The runs this console started (their processes), and starting, stopping and resuming them."""

    def __init__(self, root: Path, base: Path):
        self.root, self.base = root, base
        self.folder = root / ".console" / "jobs"
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self, name: str, text: str) -> dict[str, Any]:
        """Check the spec and launch it as run ``name`` (a new folder under the console's).

        Raises:
            LmkError: a bad name or spec, or a run of that name already there.
        """
        import yaml

        check_name(name)
        run_dir = self.root / name
        if (run_dir / "spec.yaml").exists() or self.running(name):
            raise LmkError(f"a run named {name!r} already exists", where="name",
                           fix="pick another name, or Resume that run if it stopped")
        tree = spec_tree(text, self.base, run_dir)
        self.folder.mkdir(parents=True, exist_ok=True)
        spec = atomic_write_text(self.folder / f"{name}.yaml", yaml.safe_dump(tree, allow_unicode=True,
                                                                              sort_keys=False))
        return self._launch(name, spec, resume=False)

    def resume(self, name: str) -> dict[str, Any]:
        """Continue a stopped run from its last checkpoint (``lmkernel run SPEC --resume``).

        Raises:
            LmkError: the console did not start that run, it still runs, or it has no checkpoint.
        """
        check_name(name)
        spec = self.folder / f"{name}.yaml"
        if not spec.is_file():
            raise LmkError(f"the console did not start a run named {name!r}", where="name",
                           fix=f"resume it from a shell: lmkernel run {self.root / name}/spec.yaml --resume")
        if self.running(name):
            raise LmkError(f"run {name!r} is still running", where="name", fix="stop it first")
        if not (self.root / name / "checkpoints").is_dir():
            raise LmkError(f"run {name!r} has no checkpoint to resume from", where="name",
                           fix="it stopped before its first checkpoint (train.checkpoint_every); start it again "
                           "under a new name")
        return self._launch(name, spec, resume=True)

    def _launch(self, name: str, spec: Path, resume: bool) -> dict[str, Any]:
        command = [sys.executable, "-m", "lmkernel.cli", "run", str(spec), "-q"] + (["--resume"] if resume else [])
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        with open(self.folder / f"{name}.log", "ab") as log:
            proc = subprocess.Popen(command, cwd=self.base, stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, env=env, start_new_session=True)
        self.procs[name] = proc
        record = {"name": name, "pid": proc.pid, "command": command[1:], "started": time.time(), "resume": resume}
        atomic_write_json(self.folder / f"{name}.json", record)
        return self.describe(name)

    def running(self, name: str) -> bool:
        proc = self.procs.get(name)
        return proc is not None and proc.poll() is None

    def stop(self, name: str) -> dict[str, Any]:
        """SIGTERM the run's process group, SIGKILL after ``STOP_WAIT_S``.

        Raises:
            LmkError: no running job of that name.
        """
        proc = self.procs.get(name)
        if proc is None or proc.poll() is not None:
            raise LmkError(f"no running job named {name!r}", where="name", fix="the run has already ended")
        _signal_group(proc.pid, signal.SIGTERM)
        try:
            proc.wait(STOP_WAIT_S)
        except subprocess.TimeoutExpired:
            _signal_group(proc.pid, signal.SIGKILL)
            proc.wait(STOP_WAIT_S)
        return self.describe(name)

    def describe(self, name: str) -> dict[str, Any]:
        proc = self.procs.get(name)
        code = proc.poll() if proc is not None else None
        return {"name": name, "pid": proc.pid if proc else None, "running": proc is not None and code is None,
                "exit_code": code, "log": self.log_tail(name)}

    def log_tail(self, name: str, size: int = 4000) -> str:
        path = self.folder / f"{name}.log"
        if not path.is_file():
            return ""
        with open(path, "rb") as fh:
            fh.seek(max(0, path.stat().st_size - size))
            return fh.read().decode("utf-8", errors="replace")

    def all(self) -> list[dict[str, Any]]:
        return [self.describe(n) for n in sorted(self.procs)]

    def close(self) -> None:
        """Stop every job still running (the console is shutting down)."""
        for name in list(self.procs):
            if self.running(name):
                self.stop(name)


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass
