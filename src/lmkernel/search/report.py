"""What a search leaves in its study dir: the best spec (best.yaml, runnable by `lmkernel run`), report.md with
the trials table, the optimisation-history and parameter-importance plots, and summary.json."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from ..errors import LmkError
from ..fsutil import atomic_write, atomic_write_json, atomic_write_text
from .space import Param, set_args


def _state(t: Any) -> str:
    if t.user_attrs.get("interrupted"):
        return "interrupted"
    return t.state.name.lower()


def trial_rows(study: Any) -> list[dict[str, Any]]:
    """Every trial as plain values: number, state, params, value, how far it trained, CPU and wall seconds."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        last = max(t.intermediate_values) if t.intermediate_values else None
        value = t.value if t.value is not None else (t.intermediate_values[last] if last is not None else None)
        rows.append({"number": t.number, "state": _state(t), "params": dict(t.params), "value": value,
                     "reached_pct_epoch": last, "cpu_seconds": t.user_attrs.get("cpu_seconds"),
                     "wall_seconds": t.user_attrs.get("wall_seconds"), "repeat_of": t.user_attrs.get("repeat_of"),
                     "error": t.user_attrs.get("error"), "run_dir": t.user_attrs.get("run_dir")})
    return rows


def best_trial(study: Any) -> Any:
    from optuna.trial import TrialState

    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not done:
        return None
    sign = 1 if study.direction.name == "MINIMIZE" else -1  # the earliest of the best: the one that saved its model
    return min(done, key=lambda t: (sign * t.value, t.number))


def write_best_spec(study_dir: Path, spec_path: Path, sets: list[str], best: Any) -> Path:
    """The spec with the best trial's values set, resolved and validated: `lmkernel run best.yaml` trains it."""
    from ..spec import load_spec, save_spec

    spec = load_spec(spec_path, [*sets, *set_args(best.params)])
    out = study_dir / "best.yaml"
    save_spec(spec, out)
    return out


def _save_plot(ax: Any, path: Path) -> None:
    fig = ax.figure if hasattr(ax, "figure") else ax.flat[0].figure
    fig.set_size_inches(7, 4.5)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    import matplotlib.pyplot as plt

    plt.close(fig)


def write_plots(study: Any, study_dir: Path, seed: int) -> tuple[dict[str, str], dict[str, float], list[str]]:
    """The optimisation history and fANOVA parameter importances as PNGs (matplotlib, no browser needed).
    Returns (plot files, importances, notes on what could not be drawn)."""
    import matplotlib

    matplotlib.use("Agg")
    import optuna
    from optuna.visualization import matplotlib as vis

    plots, notes, importances = {}, [], {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # optuna marks its matplotlib plots experimental
        try:
            _save_plot(vis.plot_optimization_history(study), study_dir / "history.png")
            plots["history"] = "history.png"
        except (ValueError, RuntimeError) as e:
            notes.append(f"no optimisation history plot: {e}")
        try:
            evaluator = optuna.importance.FanovaImportanceEvaluator(seed=seed)
            importances = optuna.importance.get_param_importances(study, evaluator=evaluator)
            _save_plot(vis.plot_param_importances(study, evaluator=evaluator), study_dir / "importance.png")
            plots["importance"] = "importance.png"
        except (ValueError, RuntimeError, ZeroDivisionError) as e:
            notes.append(f"no parameter importances (they need two or more complete trials that differ): {e}")
    return plots, {k: round(float(v), 4) for k, v in importances.items()}, notes


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return "" if v is None else str(v)


def markdown(summary: dict[str, Any], space: list[Param]) -> str:
    s = summary
    lines = [f"# Hyperparameter search: {s['spec']}", "",
             f"- metric: validation {s['metric']} ({s['direction']}), sampler TPE (seed {s['seed']}), "
             f"pruner {s['pruner']}",
             f"- trials: {', '.join(f'{n} {k}' for k, n in s['counts'].items())}; CPU time of all trials: "
             f"{s['cpu_seconds']:.0f} s", f"- study: `{s['storage']}` (rerun the same command to continue it)", ""]
    best = s.get("best")
    if best:
        lines += [f"**Best: trial {best['number']}, {s['metric']} {best['value']:.4f}** with "
                  + ", ".join(f"`{k}={_fmt(v)}`" for k, v in best["params"].items()) + ".",
                  f"`lmkernel run {s['best_spec']}` trains it with the test split evaluated; its trial's model "
                  f"is in `{best['run_dir']}`.", ""]
    lines += ["## Search space", "", "| key | range |", "|---|---|"]
    lines += [f"| {p.key} | {p.to_json()} |" for p in space]
    for name, title in (("history", "Optimisation history"), ("importance", "Parameter importance (fANOVA)")):
        if name in s["plots"]:
            lines += ["", f"## {title}", "", f"![{name}]({s['plots'][name]})"]
    if s["importances"]:
        lines += [""] + [f"- {k}: {v:.3f}" for k, v in s["importances"].items()]
    lines += [""] + [f"_{n}_" for n in s["notes"]]
    keys = [p.key for p in space]
    lines += ["", "## Trials", "", "| # | state | " + " | ".join(keys) + f" | {s['metric']} | reached (% epoch) | "
              "CPU s | note |", "|---" * (len(keys) + 6) + "|"]
    for r in s["trials"]:
        note = (f"repeat of {r['repeat_of']}" if r["repeat_of"] is not None else (r["error"] or ""))[:120]
        lines.append(f"| {r['number']} | {r['state']} | " + " | ".join(_fmt(r["params"].get(k)) for k in keys)
                     + f" | {_fmt(r['value'])} | {_fmt(r['reached_pct_epoch'])} | {_fmt(r['cpu_seconds'])} | "
                     f"{note.replace('|', '/')} |")
    return "\n".join(lines) + "\n"


def write_report(study: Any, study_dir: Path, spec_path: Path, sets: list[str], space: list[Param],
                 meta: dict[str, Any]) -> dict[str, Any]:
    """Write best.yaml, the plots, report.md and summary.json; return the summary."""
    rows = trial_rows(study)
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["state"]] = counts.get(r["state"], 0) + 1
    best = best_trial(study)
    plots, importances, notes = write_plots(study, study_dir, meta["seed"])
    summary = {**meta, "spec": str(spec_path), "study_dir": str(study_dir), "storage": str(study_dir / "study.db"),
               "counts": counts, "cpu_seconds": round(sum(r["cpu_seconds"] or 0 for r in rows), 2),
               "best": None, "best_spec": None, "plots": plots, "importances": importances, "notes": notes,
               "space": {p.key: p.to_json() for p in space}, "trials": rows,
               "report": str(study_dir / "report.md")}
    if best is not None:
        summary["best"] = {"number": best.number, "value": best.value, "params": dict(best.params),
                           "run_dir": best.user_attrs.get("run_dir") or _run_dir_of(study, best)}
        summary["best_spec"] = str(write_best_spec(study_dir, spec_path, sets, best))
    atomic_write_text(study_dir / "report.md", markdown(summary, space))
    atomic_write_json(study_dir / "summary.json", summary)
    if best is None:
        raise LmkError(f"no trial finished: {', '.join(f'{n} {k}' for k, n in counts.items()) or 'none ran'}",
                       where=str(study_dir / "report.md"),
                       fix="read the failed trials' logs (trials/NNNN.log) and fix the spec, then rerun")
    return summary


def _run_dir_of(study: Any, trial: Any) -> str | None:
    """A repeat's model lives in the trial it repeats."""
    first = trial.user_attrs.get("repeat_of")
    return study.trials[first].user_attrs.get("run_dir") if first is not None else None
