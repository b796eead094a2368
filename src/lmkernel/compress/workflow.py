"""compress(run, method): load -> check -> build the new artifact -> measure both -> report.

The one orchestration function behind ``lmkernel compress``; methods only build a model folder,
so the checks, the artifact layout and the before/after report are the same for all of them.
"""

from __future__ import annotations

import inspect
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import LmkError
from . import Method, build_function, check_fits, check_options, get_method
from .measure import Measurement, eval_data, measure, run_dir_of

SOURCE_WEIGHTS = ("full", "merged", "adapter", "distilled")  # fp32 torch artifacts a method can start from


@dataclass
class CompressResult:
    out_dir: Path
    table: str
    original: Measurement
    result: Measurement


def check_source(method: Method, model_dir: Path, card: dict[str, Any]) -> None:
    """The artifact must be an fp32 torch model of a task the method handles (checked on the card,
    before loading, so a task this lmkernel does not know still gets a clear answer)."""
    if card["task"] not in method.tasks:
        raise LmkError(f"--method {method.name} does not support {card['task']!r} artifacts", where=str(model_dir),
                       fix=f"it handles: {', '.join(method.tasks)}")
    if card["weights"] not in SOURCE_WEIGHTS:
        raise LmkError(f"{model_dir} is already compressed (weights: {card['weights']})", where=str(model_dir),
                       fix="compress the original run instead (see compression.json in this run for its source)")


def default_out(source: Any, method: Method, options: dict[str, Any]) -> Path:
    """``runs/x`` -> ``runs/x-int8``, ``runs/x-onnx-int8``, ``runs/x-prune-0.4``."""
    run = run_dir_of(source.path)
    extra = "".join(f"-{options[k]}" for k in ("quantize", "sparsity", "layers") if options.get(k) is not None)
    return run.with_name(f"{run.name}-{method.name}{extra}")


def is_spec(path: Path | None) -> bool:
    """``--data`` names a spec (training data and its validation set) rather than a labelled file."""
    return path is not None and Path(path).suffix.lower() in (".yaml", ".yml")


def training_spec(source: Any, data: Path | None) -> Any:
    """The spec a training method learns from: ``--data SPEC.yaml``, else the run's spec.yaml, else None."""
    from ..spec import load_spec

    path = Path(data) if is_spec(data) else run_dir_of(source.path) / "spec.yaml"
    if is_spec(data) and not path.is_file():
        raise LmkError(f"spec not found: {path}", where="--data", fix="pass an existing spec YAML file")
    return load_spec(path) if path.is_file() else None


def write_artifact(method: Method, source: Any, model_dir: Path, options: dict[str, Any],
                   spec: Any = None, progress: bool = False) -> None:
    """Build the method's model folder next to ``model_dir`` and move it into place whole.

    ``spec`` (see ``training_spec``) reaches ``build`` only for methods with ``uses_spec``."""
    from ..artifact import CARD, FORMAT_VERSION
    from ..fsutil import atomic_replace_dir, atomic_write_json

    tmp = model_dir.with_name(f"{model_dir.name}.tmp{os.getpid()}")  # per process: two servers may build at once
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        extra = {"spec": spec} if method.uses_spec else {}
        if progress and "progress" in inspect.signature(build_function(method)).parameters:
            extra["progress"] = True
        changes = build_function(method)(source, tmp, **options, **extra)
        source.tokenizer.save_pretrained(str(tmp))
        _copy_trust_profile(Path(source.path), tmp)
        card = {**source.card, **changes, "format": FORMAT_VERSION,
                "compression": {"method": method.name, **options, "source": str(source.path),
                                "source_weights": source.card["weights"]}}
        atomic_write_json(tmp / CARD, card)
        atomic_replace_dir(tmp, model_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _copy_trust_profile(source_dir: Path, tmp: Path) -> None:
    """The source's trust profile travels with the compressed copy (its thresholds were calibrated on the
    source; a copy that cannot expose pooled features still flags low confidence)."""
    from ..trust.profile import TRUST_JSON, TRUST_TENSORS

    for name in (TRUST_TENSORS, TRUST_JSON):  # tensors first: trust.json's presence means a profile
        if (source_dir / name).is_file():
            shutil.copy2(source_dir / name, tmp / name)


def _record_metrics(model_dir: Path, result: Measurement, from_validation: bool) -> None:
    """The new card's metrics are the ones measured on the compressed model, not the source's."""
    from ..artifact import CARD, read_card
    from ..fsutil import atomic_write_json

    card = read_card(model_dir)
    card["metrics"] = {"validation" if from_validation else "eval": dict(result.metrics)}
    atomic_write_json(model_dir / CARD, card)


def compress(run: Path, method: str, out: Path | None = None, *, data: Path | None = None,
             max_examples: int | None = None, batch_size: int = 32, latency_samples: int = 100,
             log: Callable[[str], None] = lambda _: None, progress: bool = False, **options: Any) -> CompressResult:
    """Compress the artifact in ``run`` with ``method`` into a new run folder and report the trade-off.

    ``options`` are the method's own (``quantize="int8"``, ``sparsity=0.4``); None means not given.
    ``data`` is a labelled file to measure on, or a spec YAML: its validation set is measured on
    and methods that train (distill, prune) learn from its training data. ``progress`` shows bars
    for the measurement (and for methods that report it, the build).

    Raises:
        LmkError: unknown method, an option it does not take, a missing or already compressed
            run, an unsupported task or layer type, or no evaluation data.
    """
    from ..artifact import find_model_dir, load, read_card
    from ..rundir import choose_run_dir
    from .report import environment, write_compression

    m = get_method(method)
    options = {k: v for k, v in options.items() if v is not None}
    check_options(m, options)
    model_dir = find_model_dir(run)
    check_source(m, model_dir, read_card(model_dir))
    source = load(model_dir, backend="exact")
    examples = eval_data(source, data, max_examples)  # fail on bad data before the slow build
    spec = training_spec(source, data) if m.uses_spec else None
    check_fits(m, source, options, spec)
    out_dir = choose_run_dir(Path(out) if out is not None else default_out(source, m, options), resume=False)
    log(f"compressing {source.path} with {m.name} into {out_dir}")
    write_artifact(m, source, out_dir / "model", options, spec, progress=progress)
    result_model = load(out_dir, backend="exact")
    log(f"measuring on {len(examples.examples)} examples of {examples.source}")
    env = environment()  # before measuring: the load average then is other processes' work, not ours
    original, result = measure([source, result_model], examples, batch_size, latency_samples, progress=progress)
    _record_metrics(out_dir / "model", result, from_validation=data is None)
    info = {"method": m.name, "summary": m.summary, "options": options,
            "source": str(run_dir_of(source.path)), "result": str(out_dir),
            "data": {"source": examples.source, **examples.record}, "examples": len(examples.examples),
            "batch_size": batch_size, "latency_samples": min(latency_samples, len(examples.examples)),
            "environment": env}
    table = write_compression(out_dir, info, original, result)
    return CompressResult(out_dir, table, original, result)
