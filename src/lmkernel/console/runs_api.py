"""Runs: the table, one run's report (metrics, confusion matrix, errors, plots), runs side by side.

Runs are named by their path under the console's folder (``a``, ``group/a``); a name that leaves the folder
or is not a run folder is a 404, so no request reaches files outside the runs.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import FileResponse

from ..serve.http_errors import ApiError
from .app import Console, authorized

router = APIRouter()
ERROR_ROWS = 20  # errors.csv rows shown in a report


def run_path(console: Console, name: str) -> Path:
    """The run folder called ``name`` under the console's folder (404 otherwise)."""
    path = (console.root / name).resolve()
    if not path.is_relative_to(console.root) or not (path / "spec.yaml").is_file():
        raise ApiError(404, f"no run {name!r} under the console's folder", param="run")
    return path


def run_name(console: Console, path: Path) -> str:
    return path.resolve().relative_to(console.root).as_posix() or "."


@router.get("/runs")
def list_runs(console: Console = Depends(authorized)) -> list[dict[str, Any]]:
    from ..catalog import describe, find_runs

    rows = []
    for path in find_runs(console.root):
        row = describe(path).as_json()
        row["id"] = run_name(console, path)
        row.pop("path")  # the page names runs by id; server paths stay on the server
        rows.append(row)
    return rows


@router.get("/report")
def report(run: str = Query(...), console: Console = Depends(authorized)) -> dict[str, Any]:
    from ..catalog import describe, read_json

    path = run_path(console, run)
    row = describe(path).as_json()
    row.pop("path")
    metrics = read_json(path / "metrics.json")
    confusion = {split: {"labels": list((metrics[split].get("per_class") or {}).keys()),
                         "matrix": metrics[split]["confusion_matrix"]}
                 for split in ("validation", "test")
                 if isinstance(metrics.get(split), dict) and "confusion_matrix" in metrics[split]}
    plots = sorted(p.name for p in (path / "plots").glob("*.png")) if (path / "plots").is_dir() else []
    return {"id": run, "row": row, "metrics": _scalars(metrics), "confusion": confusion, "plots": plots,
            "errors": _errors(path / "errors.csv"), "spec": _text(path / "spec.yaml")}


@router.get("/history")
def loss_history(run: str = Query(...), console: Console = Depends(authorized)) -> dict[str, Any]:
    from ..catalog import history, read_progress

    path = run_path(console, run)
    events = read_progress(path)
    last = events[-1] if events else {}
    return {"id": run, "history": history(path), "last": last,
            "total_steps": next((e.get("total_steps") for e in reversed(events) if e.get("total_steps")), None)}


@router.get("/plot")
def plot(run: str = Query(...), name: str = Query(...), console: Console = Depends(authorized)) -> FileResponse:
    path = run_path(console, run)
    wanted = path / "plots" / name
    if "/" in name or "\\" in name or not name.endswith(".png") or not wanted.is_file():
        raise ApiError(404, f"no plot {name!r} in run {run!r}", param="name")
    return FileResponse(wanted, media_type="image/png")


@router.get("/compare")
def compare(runs: str = Query(..., description="run ids, comma-separated"),
            console: Console = Depends(authorized)) -> dict[str, Any]:
    from ..catalog import describe, history, spec_differences

    ids = [r for r in runs.split(",") if r]
    if len(ids) < 2:
        raise ApiError(422, "compare needs two or more runs", param="runs")
    paths = [run_path(console, r) for r in ids]
    rows = [describe(p) for p in paths]
    keys = sorted({(split, m) for r in rows for split, d in r.metrics.items() for m in d})
    table = {f"{split} {m}": [r.metrics.get(split, {}).get(m) for r in rows] for split, m in keys}
    return {"runs": ids, "metrics": table, "settings": spec_differences(paths),
            "status": [r.status for r in rows], "histories": [history(p) for p in paths]}


def _scalars(metrics: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Per split, the numeric metrics (per-class tables and matrices are shown on their own)."""
    out = {}
    for split in ("validation", "test", "eval", "training"):
        d = metrics.get(split)
        if isinstance(d, dict):
            out[split] = {k: v for k, v in d.items() if isinstance(v, int | float) and not isinstance(v, bool)}
    return out


def _errors(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {"columns": [], "rows": []}
    with open(path, encoding="utf-8", newline="") as fh:
        reader = csv.reader(io.StringIO(fh.read(256_000)))
        rows = list(reader)
    return {"columns": rows[0] if rows else [], "rows": rows[1:ERROR_ROWS + 1]}


def _text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")[:20_000]
    except OSError:
        return ""
