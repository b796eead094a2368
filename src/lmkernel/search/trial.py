"""Following a trial from outside: its run's ``progress.jsonl`` gives the search its intermediate values (to
report and prune on) and its final one; a trial's process left running by a killed search is ended on resume."""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..catalog import read_progress

WORKER_MODULE = "lmkernel.search.worker"


def resource(step: int, steps_per_epoch: int) -> int:
    """Where an evaluation falls, in percent of an epoch: comparable across trials whose batch sizes (so steps
    per epoch) differ, which the pruners need (they compare trials at equal steps)."""
    return max(1, round(100 * step / max(steps_per_epoch, 1)))


@dataclass
class Progress:
    """What a trial's run has logged so far, read incrementally."""

    run_dir: Path
    metric: str
    seen: int = 0
    steps_per_epoch: int = 0
    total_steps: int = 0
    evals: list[tuple[int, float]] = field(default_factory=list)

    def new_evals(self) -> list[tuple[int, float, bool]]:
        """Evaluations logged since the last call: (resource, value, is the run's last step)."""
        events = read_progress(self.run_dir)
        fresh, self.seen = events[self.seen:], len(events)
        out = []
        for ev in fresh:
            if ev.get("event") == "start":
                self.steps_per_epoch = int(ev.get("steps_per_epoch") or 0)
                self.total_steps = int(ev.get("total_steps") or 0)
            elif ev.get("event") == "probe":  # a mid-epoch look (training/loop.py): at is percent of an epoch
                value = (ev.get("metrics") or {}).get(self.metric)
                if isinstance(value, int | float) and isinstance(ev.get("at"), int):
                    self.evals.append((ev["at"], float(value)))
                    out.append((ev["at"], float(value), False))
            elif ev.get("event") == "eval":
                value = (ev.get("metrics") or {}).get(self.metric)
                if isinstance(value, int | float):
                    step = int(ev.get("step") or 0)
                    at = resource(step, self.steps_per_epoch)
                    self.evals.append((at, float(value)))
                    out.append((at, float(value), bool(self.total_steps) and step >= self.total_steps))
        return out

    def end_value(self) -> float | None:
        """The run's best validation metric (the weights it kept), once it has logged its end."""
        events = read_progress(self.run_dir)
        end = next((e for e in reversed(events) if e.get("event") == "end"), None)
        value = end.get("best_metric") if end is not None else None
        return float(value) if isinstance(value, int | float) else None


def signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def end_orphan(pid: Any, run_dir: str) -> bool:
    """A trial left running by a killed search: end its process if that pid is still ours (a trial worker of
    this study, or a process whose command line names the trial's run dir), so the resumed search does not
    share the CPU with a run nobody follows."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
    except OSError:
        return False
    ours = f"output.dir={run_dir}" in cmdline
    if run_dir and WORKER_MODULE in cmdline:
        ours = f" {Path(run_dir).parent.parent} " in f"{cmdline} "  # a worker names its study dir
    if not ours:
        return False
    signal_group(pid, signal.SIGKILL)
    return True
