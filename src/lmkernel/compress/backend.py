"""Which backend serves an artifact: the fastest one a comparison measured, when the user selects it.

Design: a comparison (``lmkernel compare``, or bench/compression.py with ``--workdir``) that
timed an original artifact next to runtime variants of the same weights (PyTorch int8, ONNX
Runtime fp32, ONNX Runtime int8) names the fastest one whose metric is within
``MAX_METRIC_DROP`` of the original. Only ``compare --select`` writes that choice into the
original's run folder as ``backends.json``: what a run serves changes only when its user asks.
``lmkernel.load(run)`` (so ``predict`` and ``serve``, which load through it) reads that file,
loads the winner's folder instead and says so in its log; ``lmkernel inspect RUN`` shows it.
Selecting when the original itself is fastest removes the record. The record names the
original files' sizes and mtimes, so retraining the run in place makes it stale and it is
ignored; a winner that was deleted is ignored too. Compression and measurement code loads with
``backend="exact"``.

Pruned and distilled artifacts are different models, not backends of the same one: they are
never candidates (serve them by their own path).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

BACKENDS_FILE = "backends.json"
RUNTIME_VARIANTS = ("int8", "onnx")  # methods that re-encode the same weights for another runtime
MAX_METRIC_DROP = 0.01  # a faster backend may cost at most one accuracy point (the int8 target)


def fingerprint(model_dir: Path) -> list[Any]:
    """Size and mtime of every file in the original's model folder: changes when it is retrained.
    Lists of str and int, so it compares equal to its own JSON read back."""
    return sorted([p.name, p.stat().st_size, int(p.stat().st_mtime)] for p in Path(model_dir).iterdir() if p.is_file())


def _source_dir(card: dict[str, Any]) -> Path | None:
    """The original model folder a runtime variant was made from (None for other artifacts)."""
    info = card.get("compression") or {}
    return Path(info["source"]).resolve() if info.get("method") in RUNTIME_VARIANTS and info.get("source") else None


def choose(models: list[Any], rows: list[Any], metric: str = "accuracy") -> list[dict[str, Any]]:
    """For every original among ``models`` measured with at least one of its runtime variants: the
    record ``select`` would write (``run``: the original's run folder, ``fastest``: the winner's).
    ``rows`` are the Measurements, in the order of ``models``."""
    from .measure import run_dir_of

    choices = []
    for model, row in zip(models, rows):
        if model.card.get("compression"):
            continue  # only originals get a record
        mine = Path(model.path).resolve()
        variants = [(m, r) for m, r in zip(models, rows) if _source_dir(m.card) == mine]
        if not variants:
            continue
        ref = row.metrics.get(metric)
        candidates = [{"path": str(run_dir_of(Path(m.path).resolve())), "weights": r.weights,
                       "throughput": r.throughput, metric: r.metrics.get(metric)}
                      for m, r in [(model, row), *variants]]
        ok = [c for c in candidates if ref is None or (c[metric] is not None and c[metric] >= ref - MAX_METRIC_DROP)]
        fastest = max(ok, key=lambda c: c["throughput"])
        choices.append({"run": str(run_dir_of(mine)), "fastest": fastest["path"], "metric": metric,
                        "max_metric_drop": MAX_METRIC_DROP, "candidates": candidates,
                        "original": fingerprint(model.path)})
    return choices


def select(choices: list[dict[str, Any]]) -> list[str]:
    """Make each original serve its chosen backend (``backends.json``); where the original itself
    won, remove an older record. Returns one line per run saying what it serves now."""
    from ..fsutil import atomic_write_json

    lines = []
    for choice in choices:
        run = Path(choice["run"])
        path = run / BACKENDS_FILE
        if Path(choice["fastest"]) == run:
            path.unlink(missing_ok=True)
            lines.append(f"{run} serves itself (it was the fastest within {choice['max_metric_drop']:g} "
                         f"{choice['metric']})")
            continue
        atomic_write_json(path, {k: v for k, v in choice.items() if k != "run"})
        lines.append(f"{run} now serves {choice['fastest']} by default (recorded in {path}; "
                     f"delete that file to serve the run itself)")
    return lines


def selected(model_dir: Path) -> dict[str, Any] | None:
    """The current ``compare --select`` record for ``model_dir`` whose winner still exists, with
    ``loads`` = the model folder to load; None when there is none (or it is stale or damaged)."""
    from ..artifact import CARD
    from .measure import run_dir_of

    path = run_dir_of(model_dir) / BACKENDS_FILE
    if not path.is_file():
        return None
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
        fastest = Path(info["fastest"])
        current = info.get("original") == fingerprint(model_dir)
    except (OSError, ValueError, KeyError, TypeError):
        return None  # a damaged record never stops a model from loading
    for candidate in (fastest / "model", fastest):
        if current and (candidate / CARD).is_file():
            return {**info, "loads": str(candidate), "record": str(path)}
    return None


def resolve(model_dir: Path) -> Path:
    """The model folder to load for ``model_dir``: the selected backend if there is a current
    record and its artifact still exists, else ``model_dir`` itself."""
    info = selected(model_dir)
    return Path(info["loads"]) if info else model_dir
