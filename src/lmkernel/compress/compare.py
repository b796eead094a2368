"""compare(runs): measure several artifacts side by side on the same batches; table, JSON, PNG.

Behind ``lmkernel compare``. The first run is the reference for every ratio, and, unless
``data`` is given, the source of the evaluation data (its spec.yaml or compression.json).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import LmkError
from .backend import choose
from .measure import Measurement, eval_data, measure, run_dir_of


@dataclass
class CompareResult:
    out_dir: Path
    table: str
    rows: list[Measurement]
    backends: list[str]  # per original measured with its runtime variants: its fastest, or what it serves now


def _names(paths: list[Path]) -> list[str]:
    """Run folder names, or full paths where two runs share a name."""
    names = [p.name for p in paths]
    return [str(p) if names.count(p.name) > 1 else p.name for p in paths]


def compare(runs: list[Path], data: Path | None = None, out: Path = Path("compare"), *,
            max_examples: int | None = None, batch_size: int = 32, latency_samples: int = 100,
            log: Callable[[str], None] = lambda _: None, select: bool = False,
            progress: bool = False) -> CompareResult:
    """Load every run in ``runs``, measure them side by side on the same data, write the report.

    With ``select``, an original measured with its runtime variants serves the fastest of them
    from then on (``compress/backend.py``); without it nothing about the runs changes.

    Raises:
        LmkError: no runs, a missing run, runs with different label sets, or no evaluation data.
    """
    from ..artifact import find_model_dir, load
    from .report import environment, write_comparison

    if not runs:
        raise LmkError("no runs to compare", where="compare", fix="pass one or more run directories")
    paths = [run_dir_of(find_model_dir(r)) for r in runs]  # every path checked before any slow work
    models = [load(p, backend="exact") for p in paths]
    for path, model in zip(paths[1:], models[1:]):
        if model.labels != models[0].labels:
            raise LmkError(f"{path} predicts labels {model.labels}, the first run {models[0].labels}",
                           where=str(path), fix="compare artifacts of the same task and label set")
    examples = eval_data(models[0], data, max_examples)
    log(f"measuring {len(models)} artifacts on {len(examples.examples)} examples of {examples.source}")
    env = environment()  # before measuring: the load average then is other processes' work, not ours
    rows: list[Measurement] = measure(models, examples, batch_size, latency_samples, names=_names(paths),
                                      progress=progress)
    choices = choose(models, rows)
    if select:
        from .backend import select as select_backends

        lines = select_backends(choices)
    else:
        lines = [f"fastest within {c['max_metric_drop']:g} {c['metric']} of {c['run']}: {c['fastest']}"
                 + ("" if Path(c["fastest"]) == Path(c["run"]) else " (--select makes the run serve it by default)")
                 for c in choices]
    info = {"data": {"source": examples.source, **examples.record}, "examples": len(examples.examples),
            "batch_size": batch_size, "latency_samples": min(latency_samples, len(examples.examples)),
            "environment": env}
    table = write_comparison(Path(out), info, rows)
    return CompareResult(Path(out), table, rows, lines)
