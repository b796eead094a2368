"""One trial as its own process: `lmkernel train SPEC --set ...` in its own run dir, followed through the run's
``progress.jsonl`` so the search can report intermediate values and stop it when the pruner says so.

A process per trial keeps trials independent (a crash or a leak ends with its process, parallel trials
do not share torch's threads or memory) and lets the parent count each trial's CPU time from the OS.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..catalog import read_progress

LOG = "trial.log"


def resource(step: int, steps_per_epoch: int) -> int:
    """Where an evaluation falls, in percent of an epoch: comparable across trials whose batch sizes (so steps
    per epoch) differ, which the pruners need (they compare trials at equal steps)."""
    return max(1, round(100 * step / max(steps_per_epoch, 1)))


@dataclass
class TrialProcess:
    """A running trial: its process, what it has reported so far, and the CPU time the OS charged to it."""

    number: int
    run_dir: Path
    argv: list[str]
    metric: str
    proc: subprocess.Popen | None = None
    seen: int = 0
    cpu_seconds: float = 0.0
    started: float = 0.0
    wall_seconds: float = 0.0
    returncode: int | None = None
    steps_per_epoch: int = 0
    total_steps: int = 0
    evals: list[tuple[int, float]] = field(default_factory=list)

    def start(self, env: dict[str, str] | None = None) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.run_dir.parent / f"{self.run_dir.name}.log", "w", encoding="utf-8")  # noqa: SIM115
        self.started = time.monotonic()
        # its own session: a stop ends the trial's whole process group, never the search
        self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     env=env, start_new_session=True)
        log.close()

    @property
    def pid(self) -> int:
        return self.proc.pid if self.proc else -1

    def _reap(self, block: bool) -> bool:
        """Collect the exit status with its resource usage (CPU time of the trial and what it waited for)."""
        if self.returncode is not None:
            return True
        pid, status, usage = os.wait4(self.pid, 0 if block else os.WNOHANG)
        if pid == 0:
            return False
        self.returncode = os.waitstatus_to_exitcode(status)
        self.proc.returncode = self.returncode  # Popen must not wait on a pid already reaped
        self.cpu_seconds = usage.ru_utime + usage.ru_stime
        self.wall_seconds = time.monotonic() - self.started
        return True

    def finished(self) -> bool:
        return self._reap(block=False)

    def new_evals(self) -> list[tuple[int, float, bool]]:
        """Evaluations logged since the last call: (resource, value, is the run's last step)."""
        events = read_progress(self.run_dir)
        fresh, self.seen = events[self.seen:], len(events)
        out = []
        for ev in fresh:
            if ev.get("event") == "start":
                self.steps_per_epoch = int(ev.get("steps_per_epoch") or 0)
                self.total_steps = int(ev.get("total_steps") or 0)
            elif ev.get("event") == "eval":
                value = (ev.get("metrics") or {}).get(self.metric)
                if isinstance(value, int | float):
                    step = int(ev.get("step") or 0)
                    at = resource(step, self.steps_per_epoch)
                    self.evals.append((at, float(value)))
                    out.append((at, float(value), bool(self.total_steps) and step >= self.total_steps))
        return out

    def outcome(self) -> tuple[float | None, str]:
        """The trial's value (its best validation metric, whose weights the run kept) or why there is none."""
        events = read_progress(self.run_dir)
        end = next((e for e in reversed(events) if e.get("event") == "end"), None)
        if self.returncode == 0 and end is not None and isinstance(end.get("best_metric"), int | float):
            return float(end["best_metric"]), ""
        return None, self.error_line()

    def error_line(self) -> str:
        """The last line of the trial's log that reads like an error, for the trials table."""
        try:
            lines = (self.run_dir.parent / f"{self.run_dir.name}.log").read_text(encoding="utf-8",
                                                                                  errors="replace").splitlines()
        except OSError:
            lines = []
        errs = [ln.strip() for ln in lines if ln.strip().startswith(("error:", "Traceback")) or "Error" in ln]
        tail = errs[-1] if errs else (lines[-1].strip() if lines else "")
        return f"exit {self.returncode}: {tail[:200]}"

    def stop(self, grace: float = 10.0) -> None:
        """End the trial's process group (SIGTERM, then SIGKILL after ``grace`` seconds) and reap it."""
        if self.returncode is not None or self.proc is None:
            return
        _signal_group(self.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            if self._reap(block=False):
                return
            time.sleep(0.1)
        _signal_group(self.pid, signal.SIGKILL)
        self._reap(block=True)


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def trial_argv(spec_path: Path, sets: list[str], beat: float | None = None) -> list[str]:
    """`lmkernel train --trial` (validation only: the test split stays untouched by the search; metrics.json and no
    report, search/trialrun.py) with the trial's values; ``beat``: the best value so far, which the trial must
    beat to save its model."""
    argv = [sys.executable, "-m", "lmkernel.cli", "train", str(spec_path), "--quiet", "--trial"]
    if beat is not None:
        argv += ["--trial-beat", repr(float(beat))]
    for item in sets:
        argv += ["--set", item]
    return argv


def end_orphan(pid: Any, run_dir: str) -> bool:
    """A trial left running by a killed search: end it if that pid is still our trial (its command line names
    the trial's run dir), so the resumed search does not share the CPU with a run nobody follows."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
    except OSError:
        return False
    if f"output.dir={run_dir}" not in cmdline:
        return False
    _signal_group(pid, signal.SIGKILL)
    return True
