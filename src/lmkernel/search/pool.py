"""The search's side of its trial workers (search/worker.py): start them, hand each a trial, follow the trial
through its progress, stop it when pruned, and notice a worker that died with its trial.

A worker runs one trial at a time; ``parallel`` workers run trials side by side, each in its own process (its
own torch threads and memory). A worker that dies (a segfault, the OOM killer) fails its trial with the exit
status and the end of the trial's log; the next trial gets a fresh worker. A worker that does not answer a stop
in time is killed and replaced the same way.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .trial import WORKER_MODULE, Progress, signal_group


class Worker:
    """One worker process and the CPU time already charged to the trials it ran."""

    def __init__(self, root: Path, env: dict[str, str], index: int):
        root.mkdir(parents=True, exist_ok=True)
        log = open(root / f"worker-{index}.log", "a", encoding="utf-8")  # noqa: SIM115
        # its own session: a stop never reaches the search; the study dir in argv lets a resume recognise it
        self.proc = subprocess.Popen([sys.executable, "-m", WORKER_MODULE, str(root)], stdin=subprocess.PIPE,
                                     stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
                                     text=True)
        log.close()
        self.charged = 0.0
        self.returncode: int | None = None
        self.total_cpu = 0.0
        self.job: WorkerTrial | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        """False once the process has exited (its status and CPU time collected)."""
        if self.returncode is not None:
            return False
        pid, status, usage = os.wait4(self.pid, os.WNOHANG)
        if pid == 0:
            return True
        self.returncode = os.waitstatus_to_exitcode(status)
        self.proc.returncode = self.returncode  # Popen must not wait on a pid already reaped
        self.total_cpu = usage.ru_utime + usage.ru_stime
        return False

    def send(self, job: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps(job) + "\n")
            self.proc.stdin.flush()
        except OSError:  # it died since it was last seen: its trial fails as a worker that exited
            pass

    def close(self, grace: float = 5.0) -> None:
        """End of input, then SIGKILL if it has not exited within ``grace`` seconds (it may be mid-trial)."""
        if self.proc.stdin and not self.proc.stdin.closed:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
        deadline = time.monotonic() + grace
        while self.alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        if self.alive():
            signal_group(self.pid, signal.SIGKILL)
            while self.alive():
                time.sleep(0.05)


@dataclass
class WorkerTrial:
    """A trial handed to a worker: what it has reported, how it ended, and the CPU time it cost."""

    number: int
    run_dir: Path
    worker: Worker
    progress: Progress
    started: float = field(default_factory=time.monotonic)
    cpu_seconds: float = 0.0
    wall_seconds: float = 0.0
    result: dict[str, Any] | None = None

    @property
    def pid(self) -> int:
        return self.worker.pid

    @property
    def result_file(self) -> Path:
        return self.run_dir.parent / f"{self.run_dir.name}.result.json"

    def new_evals(self) -> list[tuple[int, float, bool]]:
        return self.progress.new_evals()

    def finished(self) -> bool:
        """The worker wrote this trial's result, or died running it."""
        if self.result is not None:
            return True
        if self.result_file.exists():
            self.result = json.loads(self.result_file.read_text(encoding="utf-8"))
            self.cpu_seconds = float(self.result.get("cpu_seconds") or 0.0)
            self.worker.charged += self.cpu_seconds
        elif not self.worker.alive():
            self.result = {"ok": False, "error": f"the worker exited ({self.worker.returncode}): {self.log_tail()}"}
            self.cpu_seconds = max(0.0, self.worker.total_cpu - self.worker.charged)
        else:
            return False
        self.wall_seconds = time.monotonic() - self.started
        self.worker.job = None
        return True

    def outcome(self) -> tuple[float | None, str]:
        """The trial's value (its best validation metric, whose weights the run kept) or why there is none."""
        assert self.result is not None
        value = self.progress.end_value() if self.result.get("ok") else None
        if value is not None:
            return value, ""
        return None, str(self.result.get("error") or self.log_tail())[:300]

    def log_tail(self) -> str:
        """The last line of the trial's log that reads like an error."""
        try:
            lines = (self.run_dir.parent / f"{self.run_dir.name}.log").read_text(
                encoding="utf-8", errors="replace").splitlines()
        except OSError:
            lines = []
        errs = [ln.strip() for ln in lines if ln.strip().startswith(("error:", "Traceback")) or "Error" in ln]
        return (errs[-1] if errs else (lines[-1].strip() if lines else ""))[:200]

    def stop(self, grace: float = 10.0) -> None:
        """Stop the trial (the worker's stop signal); a worker that does not end it within ``grace`` s is killed."""
        deadline = time.monotonic() + grace
        if not self.finished():
            with contextlib.suppress(ProcessLookupError):  # it died since: finished() below records how
                os.kill(self.pid, signal.SIGUSR1)
        while not self.finished() and time.monotonic() < deadline:
            time.sleep(0.05)
        if not self.finished():
            signal_group(self.pid, signal.SIGKILL)
            while not self.finished():
                time.sleep(0.05)


class WorkerPool:
    """Up to ``size`` workers for one search (or one grid): trials go to an idle worker, or a new one."""

    def __init__(self, size: int, root: Path, env: dict[str, str] | None = None):
        self.size, self.root = size, Path(root).absolute()
        self.env = dict(env if env is not None else os.environ)
        self.env.setdefault("HF_HUB_OFFLINE", "1")
        self.workers: list[Worker] = []
        self.started = 0

    def _idle(self) -> Worker:
        self.workers = [w for w in self.workers if w.alive()]
        for w in self.workers:
            if w.job is None:
                return w
        if len(self.workers) >= self.size:
            raise RuntimeError("every worker is busy")
        self.started += 1
        self.workers.append(Worker(self.root, self.env, self.started))
        return self.workers[-1]

    def start(self, number: int, run_dir: Path, spec_path: Path, sets: list[str], metric: str,
              beat: float | None = None, probes: int = 0) -> WorkerTrial:
        """Hand the trial (the spec with ``sets``, ``output.dir`` = ``run_dir``) to an idle worker; ``probes``:
        validation looks per epoch for a pruner (0: the run's own evaluations only, as a grid point runs)."""
        worker = self._idle()
        run_dir = Path(run_dir).absolute()
        run_dir.mkdir(parents=True, exist_ok=True)
        job = WorkerTrial(number, run_dir, worker, Progress(run_dir, metric))
        job.result_file.unlink(missing_ok=True)
        (run_dir.parent / f"{run_dir.name}.log").write_text("", encoding="utf-8")
        worker.job = job
        worker.send({"spec": str(Path(spec_path).absolute()), "sets": [*sets, f"output.dir={run_dir}"],
                     "beat": beat, "probes": probes, "run_dir": str(run_dir), "result": str(job.result_file)})
        return job

    def close(self) -> None:
        for w in self.workers:
            w.close()
        self.workers = []
