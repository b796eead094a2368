"""A trial worker: one long-lived process that runs search trials one after another, so Python, torch and
transformers are imported once per worker instead of once per trial.

Each trial is the same run `lmkernel train --trial` makes (``pipeline.run`` with a ``TrialMode``) in its own
run dir, seeded from the spec before its model is loaded, so its result does not depend on which worker ran it
or what ran before. The model is loaded from disk again per trial: after the first load that is the OS's page
cache and a fresh head initialised from the trial's seed (a cached copy would have to replay the head's
random initialisation to stay equal to a trial run alone).

Protocol: the search writes one JSON job per line on stdin (``spec``, ``sets``, ``beat``, ``probes``, ``run_dir``,
``result``);
the worker sends the trial's output to ``run_dir``'s log and, when the trial ends, writes ``result`` (JSON: ``ok``,
``error``, ``cpu_seconds``: this process's CPU time since its previous result, its start-up for the first).
SIGUSR1 stops the running trial (pruning) and the worker waits for the next job; end of stdin ends it.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import resource
import signal
import sys
import traceback
from pathlib import Path
from typing import Any

STOP_SIGNAL = signal.SIGUSR1
_running = False


class TrialStopped(BaseException):
    """Raised in the trial by the search's stop signal: a BaseException, so no ``except Exception`` keeps it."""


def _on_stop(signum: int, frame: Any) -> None:
    if _running:
        raise TrialStopped


def cpu_seconds() -> float:
    """User + system CPU time of this process, all its threads (torch's included)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@contextlib.contextmanager
def output_to(log: Path):
    """The trial's stdout and stderr (Python's and the C libraries') go to its log."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(log, "a", encoding="utf-8") as fh:
        os.dup2(fh.fileno(), 1)
        os.dup2(fh.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def _error_text(e: BaseException) -> str:
    from ..errors import LmkError

    if isinstance(e, LmkError):
        return e.render()
    return f"{type(e).__name__}: {e}"


def run_trial(job: dict[str, Any]) -> dict[str, Any]:
    """One trial, as `lmkernel train --trial` runs it; a failure is recorded, never raised."""
    global _running
    from .. import run  # the public entry point (the layering keeps stage packages off the pipeline module)
    from ..rundir import release
    from ..spec import load_spec
    from .trialrun import TrialMode

    run_dir = Path(job["run_dir"])
    out: dict[str, Any] = {"ok": False, "error": ""}
    try:
        try:
            _running = True
            spec = load_spec(Path(job["spec"]), list(job["sets"]))
            mode = TrialMode(beat=job.get("beat"), probes=int(job.get("probes") or 0))
            run(spec, final_eval=False, progress=False, trial=mode)
            out["ok"] = True
        finally:
            _running = False
    except TrialStopped:
        out["error"] = "stopped by the search"
    except Exception as e:  # a bad config, a diverged run, an out-of-memory error: this trial fails, not the worker
        traceback.print_exc()
        out["error"] = _error_text(e)
        print(f"error: {out['error']}", file=sys.stderr)
    finally:
        release(run_dir)  # a failed run leaves its folder locked by this process
        gc.collect()
    return out


def _die_with_parent() -> None:
    """Linux: the kernel ends this worker when the search process dies, even by SIGKILL."""
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def main() -> None:
    from ..fsutil import atomic_write_json

    _die_with_parent()
    signal.signal(STOP_SIGNAL, _on_stop)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    charged = 0.0
    while line := sys.stdin.readline():  # end of input: the search is done with this worker
        if not line.strip():
            continue
        job = json.loads(line)
        log = Path(job["run_dir"]).parent / f"{Path(job['run_dir']).name}.log"
        with output_to(log):
            out = run_trial(job)
        now = cpu_seconds()
        out["cpu_seconds"], charged = round(now - charged, 3), now
        atomic_write_json(Path(job["result"]), out)


if __name__ == "__main__":  # the search starts it as: python -m lmkernel.search.worker STUDY_DIR
    main()
