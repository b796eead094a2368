"""The search loop: ask optuna for values, hand each to a trial worker, report its evaluations, prune, tell.

One parent process does all the asking and telling (the SQLite study has one writer); trials run in
``--parallel`` worker processes, each running trials one after another (search/pool.py). A point the study
already measured is answered from that trial instead of trained again: TPE revisits points of a small discrete
space often, and a rerun would cost a full training for a value the study holds.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import LmkError
from .pool import WorkerPool, WorkerTrial
from .space import Param, set_args
from .study import SearchConfig, counted, lock_study, open_study, recover_interrupted, unlock_study


def _repeat(study: Any, params: dict[str, Any]) -> Any:
    """An earlier finished trial (complete or pruned) at exactly these values, if any."""
    from optuna.trial import TrialState

    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)):
        if t.params == params:
            return t
    return None


def _answer_repeat(study: Any, trial: Any, earlier: Any) -> None:
    from optuna.trial import TrialState

    trial.set_user_attr("repeat_of", earlier.number)
    trial.set_user_attr("cpu_seconds", 0.0)
    for step, value in sorted(earlier.intermediate_values.items()):
        trial.report(value, step)
    if earlier.state == TrialState.COMPLETE:
        study.tell(trial, earlier.value)
    else:
        study.tell(trial, state=TrialState.PRUNED)


class Search:
    """The running search: the study, the trials in flight, and how to start the next one."""

    def __init__(self, cfg: SearchConfig, space: list[Param], metric: str, direction: str, seed: int,
                 threads: int | None, log: Callable[[str], None]):
        self.cfg, self.space, self.metric, self.log = cfg, space, metric, log
        self.study = open_study(cfg.study_dir, direction, metric, seed, cfg.pruner)
        self.distributions = {p.key: p.distribution() for p in space}
        self.running: list[tuple[Any, WorkerTrial]] = []
        self.threads = threads
        self.pool = WorkerPool(cfg.parallel, cfg.study_dir)

    def start_next(self) -> None:
        trial = self.study.ask(self.distributions)
        earlier = _repeat(self.study, trial.params)
        if earlier is not None:
            _answer_repeat(self.study, trial, earlier)
            self.log(f"trial {trial.number}: same values as trial {earlier.number}, answered from it")
            return
        run_dir = (self.cfg.study_dir / "trials" / f"{trial.number:04d}").absolute()
        sets = [*self.cfg.sets, *set_args(trial.params)]
        if self.threads:
            sets.append(f"train.threads={self.threads}")
        proc = self.pool.start(trial.number, run_dir, self.cfg.spec_path, sets, self.metric, self._best(),
                               self.cfg.probes)
        trial.set_user_attr("run_dir", str(run_dir))
        trial.set_user_attr("pid", proc.pid)
        self.running.append((trial, proc))
        self.log(f"trial {trial.number}: started {' '.join(set_args(trial.params))}")

    def _best(self) -> float | None:
        """The best value of the trials finished so far: a new trial saves its model only if it beats it."""
        from optuna.trial import TrialState

        done = self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        return self.study.best_value if done else None

    def follow(self, trial: Any, proc: WorkerTrial) -> bool:
        """Report new evaluations; stop and prune the trial when the pruner says so. True when it is over."""
        from optuna.trial import TrialState

        done = proc.finished()  # a run already over is not pruned: its final value costs nothing more
        for at, value, last in proc.new_evals():
            trial.report(value, at)
            if not (done or last) and trial.should_prune():
                proc.stop()
                self._record(trial, proc)
                self.study.tell(trial, state=TrialState.PRUNED)
                self.log(f"trial {trial.number}: pruned at {at}% of an epoch ({self.metric} {value:.4f})")
                return True
        if not done:
            return False
        self._record(trial, proc)
        value, why = proc.outcome()
        if value is None:
            trial.set_user_attr("error", why)
            self.study.tell(trial, state=TrialState.FAIL)
            self.log(f"trial {trial.number}: failed ({why}); log: {proc.run_dir}.log")
        else:
            self.study.tell(trial, value)
            self.log(f"trial {trial.number}: {self.metric} {value:.4f}")
        return True

    @staticmethod
    def _record(trial: Any, proc: WorkerTrial) -> None:
        trial.set_user_attr("cpu_seconds", round(proc.cpu_seconds, 2))
        trial.set_user_attr("wall_seconds", round(proc.wall_seconds, 2))

    def run(self) -> None:
        cfg, began = self.cfg, time.monotonic()
        try:
            while True:
                out_of_time = cfg.timeout is not None and time.monotonic() - began >= cfg.timeout
                while (not out_of_time and len(self.running) < cfg.parallel
                       and counted(self.study) + len(self.running) < cfg.trials):
                    self.start_next()
                if not self.running:
                    return
                time.sleep(cfg.poll_seconds)
                self.running = [(t, p) for t, p in self.running if not self.follow(t, p)]
        finally:  # an interrupt (Ctrl-C) ends the workers too; the study marks their trials on resume
            self.pool.close()


def run_search(cfg: SearchConfig, space: list[Param], metric: str, direction: str, seed: int,
               log: Callable[[str], None]) -> Any:
    """Run (or resume) the search until the study holds ``cfg.trials`` finished trials; returns the study."""
    if cfg.trials < 1 or cfg.parallel < 1:
        raise LmkError("--trials and --parallel must be at least 1", where="--trials/--parallel",
                       fix="e.g. --trials 20 --parallel 2")
    lock_study(cfg.study_dir)
    try:
        search = Search(cfg, space, metric, direction, seed, cfg.threads, log)
        again = recover_interrupted(search.study)
        if again:
            log(f"trial(s) {', '.join(map(str, again))} were left running by an earlier search: queued again")
        search.run()
        return search.study
    finally:
        unlock_study(Path(cfg.study_dir))
