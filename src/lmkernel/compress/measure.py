"""Measure artifacts the way compression reports compare them.

For each artifact: size of its model folder on disk, parameter count, latency p50 of
``predict()`` on one text at a time, throughput of the model's forward at batch 32 over the
whole evaluation set, and the task metrics from those same forwards. Every artifact is measured
on the same examples cut into the same length-sorted batches (the order ``lmkernel eval`` uses),
and the artifacts take turns batch by batch and text by text: on a shared CPU, load from other
processes then slows all of them alike instead of whichever happened to run during it.

A single figure from a shared machine can be far off, so each one comes with its spread: the
batches are dealt into ``ROUNDS`` interleaved rounds (each a similar mix of lengths) and the
throughput of every round is kept (min and max shown next to the overall figure), and latency
comes with its quartiles. Dealing the batches costs no extra forwards.
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..errors import LmkError

LATENCY_WARMUP = 3
ROUNDS = 5  # throughput samples per artifact: enough for a spread, each still a fair mix of lengths


@dataclass
class Measurement:
    """One artifact's figures; ratios in reports are taken against the first one measured."""

    name: str
    path: str
    weights: str  # the card's weight kind, "+int8" where a format was quantized on top ("onnx+int8")
    size_bytes: int
    params: int
    latency_p50_ms: float
    throughput: float  # examples per second at batch_size, over all batches
    metrics: dict[str, float]
    throughput_range: tuple[float, float] | None = None  # slowest and fastest round (ROUNDS)
    latency_quartiles_ms: tuple[float, float] | None = None  # p25, p75 of the single-text latencies

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class EvalData:
    """Labelled examples plus how to find them again (stored in compression.json)."""

    examples: list[Any]
    source: str  # for people: a file, or "validation split of <spec>"
    record: dict[str, Any]  # for machines: {"file", "format", "text_column", "label_column"} or {"spec"}


def dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def artifact_size(model: Any) -> int:
    """Bytes on disk needed to run the artifact: a LoRA adapter counts its base model too, or a
    100 kB adapter would look 200x smaller than the 90 MB model it cannot run without."""
    size = dir_size(model.path)
    if model.card["weights"] == "adapter":
        from ..models.resolve import resolve_model_path

        size += dir_size(resolve_model_path(model.card["base_model"]))
    return size


def run_dir_of(model_dir: Path) -> Path:
    """The run folder that holds an artifact's ``model/`` (the folder itself when it stands alone)."""
    return model_dir.parent if model_dir.name == "model" else model_dir


def _from_file(model: Any, path: Path, record: dict[str, Any]) -> EvalData:
    columns = model.card.get("data", {})
    record = {"file": str(path), "format": record.get("format", "auto"),
              "text_column": record.get("text_column") or columns.get("text_column", "text"),
              "label_column": record.get("label_column") or columns.get("label_column", "label")}
    if not Path(path).is_file():
        raise LmkError(f"evaluation data not found: {path}", where=str(path), fix="pass --data FILE")
    from ..data.read import read_labelled

    ds = read_labelled(model, Path(path), fmt=record["format"], text_column=record["text_column"],
                       label_column=record["label_column"])
    return EvalData(ds.examples, str(path), record)


def _from_spec(model: Any, spec_path: Path) -> EvalData:
    from ..data.read import read_data
    from ..spec import load_spec

    spec = load_spec(spec_path)
    d = spec.data
    if d.validation is not None:
        return _from_file(model, d.validation, {"format": d.format, "text_column": d.text_column,
                                                "label_column": d.label_column})
    if not d.split.validation:
        raise LmkError(f"the run's spec {spec_path} has no validation data", where=str(spec_path),
                       fix="pass --data FILE with labelled examples")
    splits, _ = read_data(model.task, spec)  # re-draws the seeded hold-out exactly as training did
    kept = [e for e in splits["validation"].examples if e.label in set(model.labels)]
    return EvalData(kept, f"validation split ({d.split.validation:g}) of {d.train}", {"spec": str(spec_path)})


def eval_data(model: Any, data: Path | None = None, max_examples: int | None = None) -> EvalData:
    """The labelled examples to measure on: ``data`` if given (a labelled file, or a spec YAML whose
    validation set counts), else the run's validation set.

    A trained run names its validation set in spec.yaml; a compressed run names the data it was
    measured on in compression.json.

    Raises:
        LmkError: no data given and none recorded with the run, or the file is missing or bad.
    """
    run = run_dir_of(model.path)
    if data is not None and Path(data).suffix.lower() in (".yaml", ".yml"):
        if not Path(data).is_file():
            raise LmkError(f"spec not found: {data}", where="--data", fix="pass an existing spec YAML file")
        found = _from_spec(model, Path(data))
    elif data is not None:
        found = _from_file(model, Path(data), {})
    elif (run / "spec.yaml").is_file():
        found = _from_spec(model, run / "spec.yaml")
    elif (run / "compression.json").is_file():
        record = json.loads((run / "compression.json").read_text(encoding="utf-8")).get("data", {})
        if "spec" in record:
            found = _from_spec(model, Path(record["spec"]))
        else:
            found = _from_file(model, record["file"], record)
    else:
        raise LmkError(f"no validation data recorded for {run}", where=str(run),
                       fix="pass --data FILE with labelled examples (columns as in training)")
    if not found.examples:
        raise LmkError(f"no usable labelled rows in {found.source}", where=found.source,
                       fix="check the file and its text/label columns, or pass --data FILE")
    if max_examples:
        found.examples = found.examples[:max_examples]
    return found


def weight_kind(card: dict[str, Any]) -> str:
    """The card's weight kind plus any quantization on top of it ("onnx+int8")."""
    quantize = card.get("compression", {}).get("quantize")
    return card["weights"] + (f"+{quantize}" if quantize else "")


def _rotated(items: list[Any], turn: int) -> list[Any]:
    """Who goes first changes every round, so no artifact always runs on a warm or cold cache."""
    k = turn % len(items)
    return items[k:] + items[:k]


def _bar(total: int, desc: str, progress: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="step", leave=False, disable=not progress)


def latencies_ms(models: list[Any], texts: list[str], progress: bool = False) -> list[tuple[float, float, float]]:
    """(p25, median, p75) wall time of ``predict([text])`` (tokenize, forward, softmax) for each
    model, the models taking turns on each text so background load hits them alike."""
    for model in models:
        for text in texts[:LATENCY_WARMUP]:
            model.predict([text], batch_size=1)
    times: dict[int, list[float]] = {i: [] for i in range(len(models))}
    with _bar(len(texts) * len(models), "latency", progress) as bar:
        for turn, text in enumerate(texts):
            for i in _rotated(list(range(len(models))), turn):
                start = time.perf_counter()
                models[i].predict([text], batch_size=1)
                times[i].append(time.perf_counter() - start)
                bar.update()
    out = []
    for i in range(len(models)):
        ms = [1000 * t for t in times[i]]
        q = statistics.quantiles(ms, n=4, method="inclusive") if len(ms) > 1 else [ms[0]] * 3
        out.append((q[0], statistics.median(ms), q[2]))
    return out


def _batches(model: Any, examples: list[Any], batch_size: int) -> list[dict[str, Any]]:
    from ..data.batching import eval_batches

    features = model.task.encode(examples, model.tokenizer, model.labels, model.card.get("max_length", 512))
    pad = model.tokenizer.pad_token_id or 0
    return [model.task.collate([features[i] for i in idx], pad)
            for idx in eval_batches([len(f["input_ids"]) for f in features], batch_size)]


def throughputs_and_metrics(models: list[Any], examples: list[Any], batch_size: int, progress: bool = False,
                            rounds: int = ROUNDS) -> list[tuple[float, tuple[float, float], dict[str, float]]]:
    """For each model: examples/s of the forward alone at ``batch_size``, the slowest and fastest
    of ``rounds`` interleaved rounds of batches, and the task metrics from those forwards. Models
    take turns batch by batch, so a slow patch on a shared machine costs them all the same."""
    import torch

    batches = [_batches(m, examples, batch_size) for m in models]
    outputs: list[dict[str, list]] = [{} for _ in models]
    n_rounds = max(1, min(rounds, len(batches[0])))
    seconds = [[0.0] * n_rounds for _ in models]
    counts = [0] * n_rounds
    with torch.inference_mode(), _bar(len(batches[0]) * len(models), "throughput", progress) as bar:
        for model, own in zip(models, batches):
            model.model(**own[0])  # warm-up on the longest batch: allocators, ORT arenas, fbgemm packing
        for turn in range(len(batches[0])):
            counts[turn % n_rounds] += len(batches[0][turn]["input_ids"])
            for i in _rotated(list(range(len(models))), turn):
                batch = batches[i][turn]
                start = time.perf_counter()
                out = models[i].model(**batch)
                seconds[i][turn % n_rounds] += time.perf_counter() - start
                for k, v in models[i].task.step_outputs(out, batch).items():
                    outputs[i].setdefault(k, []).extend(v)
                bar.update()
    results = []
    for model, out, secs in zip(models, outputs, seconds):
        metrics = model.task.metrics(out, model.labels)
        per_round = [n / s for n, s in zip(counts, secs) if s > 0]
        results.append((len(examples) / sum(secs), (min(per_round), max(per_round)),
                        {k: v for k, v in metrics.items() if isinstance(v, float)}))
    return results


def measure(models: list[Any], data: EvalData, batch_size: int = 32, latency_samples: int = 100,
            names: list[str] | None = None, progress: bool = False) -> list[Measurement]:
    """All figures for loaded artifacts (``lmkernel.load``) on ``data``, measured side by side."""
    from ..tuning import count_parameters

    for model in models:
        model.model.eval()
    speed = throughputs_and_metrics(models, data.examples, batch_size, progress)
    latency = latencies_ms(models, [e.text for e in data.examples[:latency_samples]], progress)
    rows = []
    for i, model in enumerate(models):
        params = model.card.get("total_params") or count_parameters(model.model)[1]
        run = run_dir_of(model.path)
        rows.append(Measurement(name=names[i] if names else run.name, path=str(run), weights=weight_kind(model.card),
                                size_bytes=artifact_size(model), params=int(params), latency_p50_ms=latency[i][1],
                                throughput=speed[i][0], metrics=speed[i][2], throughput_range=speed[i][1],
                                latency_quartiles_ms=(latency[i][0], latency[i][2])))
    return rows
