"""The gain guard: augmentation is kept only when it helps, judged on the validation split.

A run with ``data.augment`` trains twice from the same splits: once on the training rows as they are
(``without-augment/``), once with the new rows added (``with-augment/``). The better run by validation
metric (``train.metric``; a tie keeps the plain one) is promoted into the run directory, so ``lmkernel.load``
and ``serve`` see it; the other keeps its report and metrics, not its weights. The splits are written as
JSON Lines under ``augment/`` first, so both runs read the very same rows and a user can read what was added.
"""

from __future__ import annotations

import os
import shutil
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import LmkError
from ..fsutil import atomic_write, atomic_write_json, atomic_write_text
from .options import AugmentOptions, eda_parameters

RUNS = {"without": "without-augment", "with": "with-augment"}


def augment(examples: list[Any], opts: AugmentOptions, model_ref: str, seed: int) -> tuple[list[Any], dict]:
    """New rows for ``examples`` (labels kept) and what made them: {"alpha", "n_aug", "added": {op: rows}}."""
    from .eda import augment_examples, vocabulary

    alpha, n_aug = eda_parameters(opts, len(examples))
    syn: dict[str, list[str]] = {}
    if {"synonym", "insert"} & set(opts.ops):
        from .synonyms import neighbours, table

        syn = neighbours(table(opts.synonym_model or model_ref), vocabulary(examples), opts.neighbours,
                         opts.min_similarity)
    rows, counts = augment_examples(examples, list(opts.ops), alpha, n_aug, syn, seed)
    if opts.back_translation is not None:
        from .backtranslate import back_translate

        bt = back_translate(examples, opts.back_translation)
        rows, counts["back_translation"] = rows + bt, len(bt)
    return rows, {"alpha": alpha, "n_aug": n_aug, "added": dict(counts), "words_with_synonyms": len(syn)}


def _write_jsonl(path: Path, examples: list[Any], text_column: str, label_column: str) -> None:
    import json

    def write(tmp: Path) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            for e in examples:
                f.write(json.dumps({text_column: e.text, label_column: e.label}, ensure_ascii=False) + "\n")

    atomic_write(path, write)


def _child(spec, files: dict[str, Path], train: Path, out: Path):
    """The spec of one of the two runs: the written splits, no hold-out, no augmentation."""
    child = spec.model_copy(deep=True)
    d = child.data
    d.augment, d.format, d.train = None, "jsonl", train
    d.split.validation = d.split.test = None
    d.validation, d.test = files.get("validation"), files.get("test")
    child.output.dir = out
    return child


def _better(metric: str, without: float | None, with_: float | None) -> str:
    if with_ is None or without is None:
        return "with" if without is None else "without"
    improved = with_ < without if metric == "loss" else with_ > without
    return "with" if improved else "without"


def _check(spec, task, resume: bool) -> None:
    if resume:
        raise LmkError("--resume cannot continue a run with data.augment", where="data.augment",
                       fix="start the run again without --resume (it trains the plain and the augmented model)")
    bt = spec.data.augment.back_translation
    if bt is not None:
        from .backtranslate import check_model

        check_model(bt.model)


def run_augmented(spec, run_fn: Callable[..., Any], *, resume: bool = False, final_eval: bool = True,
                  progress: bool = True):
    """``pipeline.run`` for a spec with ``data.augment``: augment, train with and without, keep the better."""
    from ..data.read import read_data
    from ..rundir import RunResult, choose_run_dir, release
    from ..spec import save_spec
    from ..tasks import get_task

    opts: AugmentOptions = spec.data.augment
    task = get_task(spec.task.type, spec.task)
    if task.name != "classification":
        print(f"note: data.augment makes new rows for classification only (a label per text); the {task.name} "
              "task trains on its data as it is")
        plain = spec.model_copy(deep=True)
        plain.data.augment = None
        return run_fn(plain, resume=resume, final_eval=final_eval, progress=progress)
    _check(spec, task, resume)
    splits, _labels = read_data(task, spec)
    if opts.guard and not (splits.get("validation") and splits["validation"].examples):
        raise LmkError("data.augment keeps augmentation only if validation improves, but there is no validation "
                       "split to judge by", where="data.augment.guard",
                       fix="set data.validation or data.split.validation, or data.augment.guard: false to train "
                       "on the augmented rows without the check")
    parent = choose_run_dir(Path(spec.output.dir), False)
    top = spec.model_copy(deep=True)
    top.output.dir = parent
    save_spec(top, parent / "spec.yaml")
    train = splits["train"].examples
    added, made = augment(train, opts, spec.model.name, spec.seed)
    print(f"data.augment: {len(added)} new rows from {len(train)} ({made['added']})")
    files = _write_splits(parent / "augment", splits, train + added, spec.data)
    results: dict[str, Any] = {}
    for key in ("without", "with") if opts.guard else ("with",):
        child = _child(spec, files, files["train-augmented" if key == "with" else "train"], parent / RUNS[key])
        results[key] = run_fn(child, resume=False, final_eval=final_eval, progress=progress)
    metrics = _promote(parent, spec.train.metric, results, made, len(train))
    release(parent)
    return RunResult(parent, metrics)


def _write_splits(folder: Path, splits: dict, augmented: list[Any], data) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}
    parts = {"train": splits["train"].examples, "train-augmented": augmented,
             **{k: splits[k].examples for k in ("validation", "test") if k in splits}}
    for name, examples in parts.items():
        files[name] = folder / f"{name}.jsonl"
        _write_jsonl(files[name], examples, data.text_column, data.label_column)
    return files


def _promote(parent: Path, metric: str, results: dict[str, Any], made: dict, n_train: int) -> dict[str, Any]:
    """Move the kept run's artifact and report into ``parent``; the other keeps its report, not its weights."""
    values = {k: r.metrics.get("validation", {}).get(metric) for k, r in results.items()}
    kept = _better(metric, values.get("without"), values.get("with")) if len(results) == 2 else "with"
    src = parent / RUNS[kept]
    for entry in sorted(src.iterdir()):
        if entry.name not in ("spec.yaml", ".lock"):
            os.replace(entry, parent / entry.name)
    for key in results:
        if key != kept:
            shutil.rmtree(parent / RUNS[key] / "model", ignore_errors=True)
    summary = {"kept": kept, "metric": metric, "validation": values, "training_rows": n_train, **made,
               "runs": {k: RUNS[k] for k in results}}
    metrics = dict(results[kept].metrics)
    metrics["augmentation"] = summary
    atomic_write_json(parent / "metrics.json", metrics)
    report = parent / "report.md"
    text = report.read_text(encoding="utf-8") if report.exists() else ""
    atomic_write_text(report, text.rstrip("\n") + "\n\n" + section(summary) + "\n")
    return metrics


def section(s: dict[str, Any]) -> str:
    """report.md's "Augmentation" section: rows added per operation, the validation metric with and without."""
    added: Counter = Counter(s["added"])
    lines = ["## Augmentation", "",
             f"EDA (Wei & Zou 2019) with alpha {s['alpha']}, up to {s['n_aug']} new rows per training row; synonyms "
             f"are nearest whole-word neighbours in the encoder's input embeddings ({s['words_with_synonyms']} "
             "training words had one). New rows keep their row's label.", "",
             "| operation | rows added |", "|---|---|"]
    lines += [f"| {op} | {n} |" for op, n in added.items()]
    lines += [f"| total | {sum(added.values())} (to {s['training_rows']} training rows) |", "",
              f"| run | validation {s['metric']} | |", "|---|---|---|"]
    for key in s["runs"]:
        v = s["validation"].get(key)
        shown = f"{v:.4f}" if isinstance(v, float) else "n/a"
        lines.append(f"| {key} augmentation (`{s['runs'][key]}/`) | {shown} | {'kept' if key == s['kept'] else ''} |")
    if len(s["runs"]) == 2:
        why = "validation improved" if s["kept"] == "with" else "augmentation did not improve validation"
        lines += ["", f"Kept: the run {s['kept']} augmentation ({why}); this folder holds its model and report. "
                  "The other run's report is in its folder (its weights were not kept)."]
    else:
        lines += ["", "data.augment.guard is false: only the augmented run was trained."]
    return "\n".join(lines)
