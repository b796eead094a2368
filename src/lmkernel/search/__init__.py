"""Hyperparameter search (`lmkernel tune`): optuna's TPE over spec keys, each trial a `lmkernel train --trial` run
on a long-lived worker process, pruned on its logged validation metrics, recorded in SQLite so a killed search
resumes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from .space import Param, check_space, default_space, parse_space, read_space
from .study import PRUNERS, SearchConfig

__all__ = ["PRUNERS", "Param", "SearchConfig", "default_space", "parse_space", "read_space", "tune"]


def default_study_dir(spec: Any) -> Path:
    """Beside the spec's run dir: runs/NAME → runs/NAME-tune."""
    out = Path(spec.output.dir)
    return out.with_name(out.name + "-tune")


def tune(spec_path: Path, trials: int, space_file: Path | None = None, parallel: int = 1,
         study_dir: Path | None = None, pruner: str = "median", timeout: float | None = None,
         sets: list[str] | None = None, log: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """Search the spec's hyperparameters; returns the summary (also written to the study dir)."""
    import os

    from ..evaluation.metrics import LOWER_IS_BETTER
    from ..spec import load_spec
    from .report import write_report
    from .runner import run_search
    from .study import make_pruner

    make_pruner(pruner)  # an unknown name fails before anything is written
    sets = list(sets or [])
    spec = load_spec(spec_path, sets)
    space = read_space(space_file) if space_file is not None else default_space(spec)
    check_space(space, spec_path, sets)
    metric = spec.train.metric
    direction = "minimize" if metric in LOWER_IS_BETTER else "maximize"
    study_dir = Path(study_dir or default_study_dir(spec)).absolute()
    threads = None
    if parallel > 1 and spec.train.threads is None:
        threads = max(1, (os.cpu_count() or 1) // parallel)
    cfg = SearchConfig(Path(spec_path).absolute(), study_dir, trials, parallel, pruner, timeout, tuple(sets), threads)
    study = run_search(cfg, space, metric, direction, spec.seed, log)
    meta = {"metric": metric, "direction": direction, "seed": spec.seed, "pruner": pruner}
    return write_report(study, study_dir, Path(spec_path).absolute(), sets, space, meta)
