"""Tuning view: a ``lmkernel tune`` study read while it runs — its trials, the best so far, the optimisation
history and the intermediate values of trials still training.

The study is read through optuna's own storage API on a read-only SQLite connection (the search process stays
its one writer); the trials table is ``search.report.trial_rows``, the one ``report.md`` is made from, and a
running trial's step is read from its run dir through the catalog, like any run's.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Query

from ..serve.http_errors import ApiError
from .app import Console, authorized
from .runs_api import run_name

router = APIRouter()
_lock = threading.Lock()
_storages: dict[Path, Any] = {}  # study.db -> read-only RDBStorage (made once; each read opens the file anew)
SQLITE_WAIT_S = 5  # a read that meets the search's write waits this long for it


def find_studies(root: Path) -> list[Path]:
    """Study folders (holding a ``study.db``) in the console's folder and two levels below it."""
    from ..search.study import DB

    found = [root] if (root / DB).is_file() else []
    return found + sorted(p.parent for p in (*root.glob(f"*/{DB}"), *root.glob(f"*/*/{DB}")))


def study_path(console: Console, name: str) -> Path:
    """The study folder called ``name`` under the console's folder (404 otherwise)."""
    from ..search.study import DB

    path = (console.root / name).resolve()
    if not path.is_relative_to(console.root) or not (path / DB).is_file():
        raise ApiError(404, f"no study {name!r} under the console's folder", param="study")
    return path


def load_study(folder: Path) -> Any:
    """The study in ``folder/study.db``, opened read-only.

    Raises:
        ApiError: 422 when the file is not an lmkernel study (or not a database).
    """
    import optuna
    from sqlalchemy.exc import SQLAlchemyError

    from ..search.study import DB, NAME

    db = (folder / DB).resolve()
    try:
        with _lock:
            if db not in _storages:
                _storages[db] = optuna.storages.RDBStorage("sqlite://", skip_compatibility_check=True,
                                                           skip_table_creation=True,
                                                           engine_kwargs=_read_only(db))
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        return optuna.load_study(study_name=NAME, storage=_storages[db])
    except (KeyError, SQLAlchemyError, optuna.exceptions.OptunaError) as e:
        _storages.pop(db, None)
        raise ApiError(422, f"{db.name} in {folder.name!r} is not a study lmkernel tune can read: {e}",
                       param="study") from e


def _read_only(db: Path) -> dict[str, Any]:
    """SQLAlchemy engine settings that open ``db`` read-only (an SQLite URI, percent-encoded: a folder name
    may hold '%' or spaces), a fresh connection per read (none outlives a study.db deleted and made again)."""
    import sqlite3
    from urllib.parse import quote

    from sqlalchemy.pool import NullPool

    def connect() -> sqlite3.Connection:
        return sqlite3.connect(f"file:{quote(str(db))}?mode=ro", uri=True, timeout=SQLITE_WAIT_S,
                               check_same_thread=False)

    return {"creator": connect, "poolclass": NullPool}


def read_study(console: Console, folder: Path) -> dict[str, Any]:
    """Trials, best so far, history and intermediate values of the study in ``folder``, as the page draws them."""
    from ..search.report import trial_rows

    study = load_study(folder)
    maximize = study.direction.name.lower() == "maximize"
    intermediate = {t.number: sorted(t.intermediate_values.items()) for t in study.get_trials(deepcopy=False)}
    rows, counts = [], {}
    for row in trial_rows(study):
        run_dir = _inside(console, row.pop("run_dir"))
        row["run"] = run_name(console, run_dir) if run_dir and (run_dir / "spec.yaml").is_file() else None
        row["intermediate"] = intermediate.get(row["number"], [])
        if row["state"] == "running" and run_dir:
            row["progress"] = _progress(run_dir)
        counts[row["state"]] = counts.get(row["state"], 0) + 1
        rows.append(row)
    history, best_line, best = [], [], None
    for row in rows:
        if row["state"] != "complete" or row["value"] is None:
            continue
        history.append([row["number"], row["value"]])
        if best is None or (row["value"] > best["value"] if maximize else row["value"] < best["value"]):
            best = {"number": row["number"], "value": row["value"], "params": row["params"]}
        best_line.append([row["number"], best["value"]])
    return {"id": run_name(console, folder), "metric": study.user_attrs.get("metric"),
            "direction": "maximize" if maximize else "minimize", "counts": counts, "trials": rows, "best": best,
            "history": history, "best_so_far": best_line, "searching": counts.get("running", 0) > 0,
            "finished": (folder / "summary.json").is_file()}


def _inside(console: Console, run_dir: str | None) -> Path | None:
    """A trial's run dir when it is under the console's folder (its report then opens from the trials table)."""
    path = Path(run_dir).resolve() if run_dir else None
    return path if path is not None and path.is_relative_to(console.root) else None


def _progress(run_dir: Path) -> dict[str, Any]:
    """How far a running trial's training got: its last step of the total, from progress.jsonl."""
    from ..catalog import read_progress

    events = read_progress(run_dir)
    total = next((e.get("total_steps") for e in reversed(events) if e.get("total_steps")), None)
    return {"step": events[-1].get("step") if events else None, "total_steps": total}


@router.get("/studies")
def studies(console: Console = Depends(authorized)) -> list[dict[str, Any]]:
    """The study folders under the console's, with how many trial run dirs each holds (cheap: no database)."""
    found = []
    for folder in find_studies(console.root):
        trials = folder / "trials"
        count = sum(1 for p in trials.iterdir() if p.is_dir()) if trials.is_dir() else 0
        found.append({"id": run_name(console, folder), "trials": count, "best": (folder / "best.yaml").is_file()})
    return found


@router.get("/study")
def study(id: str = Query(..., description="the study folder, relative to the console's"),  # noqa: A002
          console: Console = Depends(authorized)) -> dict[str, Any]:
    return read_study(console, study_path(console, id))
