"""`lmkernel runs [DIR]` and `lmkernel runs compare A B ...`: what has been trained here, side by side."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..clikit import DebugOpt, _guard
from ..errors import LmkError

RUNS_HELP = """List the runs under DIR (default ./runs): task, model, tuning method, the run's metric on
validation and test, model size, date and status (done, running, failed, resumable, incomplete).

`lmkernel runs compare A B ...` puts runs' metrics side by side, lists the spec settings that differ and
draws their loss curves on one chart (--png)."""


def runs(
    args: Annotated[Optional[list[str]], typer.Argument(
        help="DIR (default runs), or: compare RUN RUN ... (two or more run folders).", show_default=False)] = None,
    json_: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    png: Annotated[Optional[Path], typer.Option(help="compare: write the overlaid loss curves to this PNG "
                                                "(default: compare.png in the current folder).")] = None,
    debug: DebugOpt = False,
) -> None:
    with _guard(debug):
        args = list(args or [])
        if args and args[0] == "compare":
            _compare([Path(a) for a in args[1:]], json_, png)
        elif len(args) > 1:
            raise LmkError(f"runs takes one folder, got {len(args)}: {' '.join(args)}", where="DIR",
                           fix="list one folder (lmkernel runs runs/), or compare runs: lmkernel runs compare A B")
        else:
            _list(Path(args[0]) if args else Path("runs"), json_)



def _metric_cell(value: float | None) -> str:
    if value is None:
        return "-"
    return str(int(value)) if float(value).is_integer() and abs(value) >= 1 else f"{value:.4f}"


def _list(root: Path, json_: bool) -> None:
    from ..catalog import describe, find_runs, human_size

    rows = [describe(r) for r in find_runs(root)]
    if json_:
        typer.echo(json.dumps([r.as_json() for r in rows], ensure_ascii=False, indent=1))
        return
    if not rows:
        typer.echo(f"no runs under {root} (a run folder holds the spec.yaml that `lmkernel run` writes)")
        return
    head = ["run", "task", "model", "method", "metric", "validation", "test", "size", "date", "status"]
    table = [[r.name, r.task, _short(r.model), r.method, r.metric or "-", _metric_cell(r.validation),
              _metric_cell(r.test), human_size(r.size_bytes) if r.size_bytes else "-", r.date,
              r.status + (f" ({r.detail})" if r.detail and r.status != "done" else "")] for r in rows]
    typer.echo(_render(head, table))


def _short(model: str, width: int = 28) -> str:
    return model if len(model) <= width else "…" + model[-(width - 1):]


def _render(head: list[str], table: list[list[str]]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(head, *table)]
    lines = ["  ".join(str(x).ljust(w) for x, w in zip(row, widths)).rstrip() for row in [head, *table]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _compare(paths: list[Path], json_: bool, png: Path | None) -> None:
    from ..catalog import describe, history, spec_differences
    from ..evaluation.plots import compared_loss_curves

    if len(paths) < 2:
        raise LmkError(f"compare needs two or more runs, got {len(paths)}", where="compare",
                       fix="lmkernel runs compare runs/a runs/b")
    missing = [str(p) for p in paths if not (p / "spec.yaml").is_file()]
    if missing:
        raise LmkError(f"not a run folder: {', '.join(missing)}", where="compare",
                       fix="give folders made by lmkernel run (each holds a spec.yaml); `lmkernel runs` lists them")
    rows = [describe(p) for p in paths]
    names = _unique([r.name for r in rows])
    metrics = sorted({(split, m) for r in rows for split, d in r.metrics.items() for m in d})
    table = {f"{split} {m}": [r.metrics.get(split, {}).get(m) for r in rows] for split, m in metrics}
    differ = spec_differences(paths)
    out = png or Path("compare.png")
    drawn = compared_loss_curves({n: history(p) for n, p in zip(names, paths)}, out)
    if json_:
        typer.echo(json.dumps({"runs": names, "paths": [str(p) for p in paths], "metrics": table,
                               "settings": differ, "status": [r.status for r in rows],
                               "loss_curves": str(drawn) if drawn else None}, ensure_ascii=False, indent=1))
        return
    body = [[k] + [_metric_cell(v) for v in vals] for k, vals in table.items()]
    typer.echo(_render(["metric", *names], body) if body else "no metrics yet (runs not finished)")
    if differ:
        typer.echo("\nsettings that differ:")
        typer.echo(_render(["setting", *names], [[k] + [json.dumps(v, ensure_ascii=False) for v in vals]
                                                  for k, vals in differ.items()]))
    typer.echo(f"\nloss curves: {drawn}" if drawn else "\nno loss history to draw")


def _unique(names: list[str]) -> list[str]:
    """Run names as column heads; two runs called the same get their index appended."""
    return [n if names.count(n) == 1 else f"{n}#{i + 1}" for i, n in enumerate(names)]
