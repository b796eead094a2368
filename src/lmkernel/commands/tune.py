"""`lmkernel tune`: hyperparameter search over a spec (optuna TPE, pruning, resumable SQLite study)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..clikit import DebugOpt, QuietOpt, SetOpt, _guard, _log


def tune(
    spec: Annotated[Path, typer.Argument(help="YAML spec file: every trial trains it with the searched keys set.")],
    trials: Annotated[int, typer.Option("--trials", "-n", help="Finished trials the study should hold (a rerun "
                                        "counts those already there and runs the rest).")] = 20,
    space: Annotated[Optional[Path], typer.Option("--space", help="YAML search space: spec keys to ranges, e.g. "
                                                  "train.lr: {type: float, low: 1e-5, high: 1e-3, log: true} "
                                                  "(default: lr, batch size, epochs, weight decay, warmup, and "
                                                  "LoRA r/alpha for lora).")] = None,
    parallel: Annotated[int, typer.Option("--parallel", "-p", help="Trials running at once, each its own process "
                                          "(the cores are split between them).")] = 1,
    study_dir: Annotated[Optional[Path], typer.Option("--study-dir", help="Folder of the study (study.db, trials/, "
                                                      "best.yaml, report.md); default: the spec's output.dir "
                                                      "with -tune appended.")] = None,
    pruner: Annotated[str, typer.Option("--pruner", help="median: stop a trial worse than the median of earlier "
                                        "trials at the same point; hyperband: successive halving; none: run every "
                                        "trial to its end.")] = "median",
    timeout: Annotated[Optional[float], typer.Option("--timeout", help="Seconds after which no new trial starts "
                                                     "(running ones finish).")] = None,
    set_: SetOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary (best values, spec, trials) as "
                                          "JSON.")] = False,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Search hyperparameters: TPE proposes values, each trial trains the spec in its own process and run dir,
    weak trials are pruned on their validation metric; writes best.yaml and report.md. Rerun to resume."""
    with _guard(debug):
        from ..search import tune as run_tune

        try:
            summary = run_tune(spec, trials, space, parallel, study_dir, pruner, timeout, set_ or [],
                               log=_log(quiet or as_json))
        except KeyboardInterrupt:  # the study keeps every finished trial; the running ones are queued again
            typer.secho("interrupted; rerun the same command to continue the study", err=True)
            raise typer.Exit(130) from None
        if as_json:
            typer.echo(json.dumps(summary, ensure_ascii=False, default=str))
            return
        best = summary["best"]
        typer.echo(f"best:   trial {best['number']}, {summary['metric']}={best['value']:.4f} "
                   + " ".join(f"{k}={v}" for k, v in best["params"].items()))
        typer.echo(f"spec:   {summary['best_spec']}")
        typer.echo(f"report: {summary['report']}")
