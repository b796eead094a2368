"""The study: optuna's record of every trial in SQLite under the study dir, so a killed search resumes.

Rerunning the same command opens the same study and goes on until it holds ``--trials`` finished trials.
A trial the kill left RUNNING is marked failed (``interrupted``) and its values are queued again, so the
search loses at most the trials that were running. One search at a time holds a study dir (a lock file).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import LmkError

DB = "study.db"
NAME = "lmkernel"
PRUNERS = ("median", "hyperband", "none")
# a trial reports at quarters of each epoch: a one-epoch trial can be pruned, a long one after a quarter of an epoch
PROBES = 4
_held: dict[Path, int] = {}


@dataclass
class SearchConfig:
    """What one `lmkernel tune` asks for, in plain values (the CLI's flags)."""

    spec_path: Path
    study_dir: Path
    trials: int
    parallel: int = 1
    pruner: str = "median"
    timeout: float | None = None
    sets: tuple[str, ...] = ()
    threads: int | None = None  # torch threads per trial (parallel trials share the cores); None: the spec's
    poll_seconds: float = 1.0
    probes: int = PROBES  # validation looks per epoch a trial reports to the pruner (unless train.eval_every is set)


def lock_study(study_dir: Path) -> None:
    """Hold the study dir for this process: two searches adding trials to one study would each re-queue the
    other's running trials as interrupted."""
    import fcntl

    study_dir = study_dir.absolute()
    if study_dir in _held:
        return
    study_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(study_dir / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise LmkError(f"another lmkernel tune is using {study_dir}", where="--study-dir",
                       fix="wait for it to finish, or pass another --study-dir") from None
    _held[study_dir] = fd


def unlock_study(study_dir: Path) -> None:
    fd = _held.pop(study_dir.absolute(), None)
    if fd is not None:
        os.close(fd)  # closing the descriptor releases the flock


def make_pruner(name: str) -> Any:
    """Median: stop a trial whose value at an evaluation is worse than the median of earlier trials there;
    Hyperband: successive halving over brackets of budgets; none: every trial runs to its end."""
    import optuna

    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=4, n_warmup_steps=0)
    if name == "hyperband":
        # resources are percent of an epoch (trial.resource): 100 is the first per-epoch evaluation
        return optuna.pruners.HyperbandPruner(min_resource=100, reduction_factor=3)
    if name == "none":
        return optuna.pruners.NopPruner()
    raise LmkError(f"unknown pruner {name!r}", where="--pruner", fix="use one of " + ", ".join(PRUNERS))


def open_study(study_dir: Path, direction: str, metric: str, seed: int, pruner: str) -> Any:
    """Create or reopen the study in ``study_dir/study.db`` with a seeded TPE sampler."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = optuna.storages.RDBStorage(f"sqlite:///{(study_dir / DB).absolute()}")
    known = {s.study_name: s.n_trials for s in optuna.get_all_study_summaries(storage)}
    # seeded, and offset by the trials already there: a resumed search draws new points, not the first ones again;
    # constant liar: parallel trials asked before the running ones finish are steered away from them
    sampler = optuna.samplers.TPESampler(seed=seed + known.get(NAME, 0), constant_liar=True, n_startup_trials=8)
    study = optuna.create_study(storage=storage, study_name=NAME, direction=direction, sampler=sampler,
                                pruner=make_pruner(pruner), load_if_exists=True)
    if study.direction.name.lower() != direction:
        raise LmkError(f"the study in {study_dir} was made to {study.direction.name.lower()}, this spec's "
                       f"{metric} must {direction}", where="--study-dir",
                       fix="use a new --study-dir for a different train.metric")
    known = study.user_attrs.get("metric")
    if known is not None and known != metric:
        raise LmkError(f"the study in {study_dir} optimises {known}, this spec's train.metric is {metric}",
                       where="--study-dir", fix="use a new --study-dir, or set train.metric back")
    study.set_user_attr("metric", metric)
    return study


def recover_interrupted(study: Any) -> list[int]:
    """Trials a killed search left RUNNING: end their orphaned processes, mark them failed (interrupted) and
    queue their values again. Returns their numbers."""
    from optuna.trial import TrialState

    from .trial import end_orphan

    numbers = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        end_orphan(t.user_attrs.get("pid"), str(t.user_attrs.get("run_dir", "")))
        study._storage.set_trial_user_attr(t._trial_id, "interrupted", True)
        study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
        if t.params:
            study.enqueue_trial(t.params, user_attrs={"retry_of": t.number})
        numbers.append(t.number)
    return numbers


def counted(study: Any) -> int:
    """Trials that count toward ``--trials``: finished, pruned, or failed by themselves (an interrupted one is
    queued again and counts when its retry ends)."""
    from optuna.trial import TrialState

    done = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
    return sum(1 for t in study.get_trials(deepcopy=False, states=done) if not t.user_attrs.get("interrupted"))
