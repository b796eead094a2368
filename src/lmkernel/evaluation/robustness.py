"""Clean versus perturbed accuracy of a classifier, per perturbation kind (``evaluation/perturb.py``).

Used by ``lmkernel eval RUN --data FILE --robustness`` and, with ``train.robustness: true``, by every
classification run on its validation split. The figures go into metrics.json under ``robustness`` and
into report.md as one table; a kind that changes no text (Chinese variants of English data) says so
instead of repeating the clean accuracy as if it had been tested.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from .perturb import KINDS, perturb


def perturbed_accuracy(task, model, tokenizer, examples: list, labels: list[str], *, accelerator, pad_id: int,
                       max_length: int, batch_size: int, seed: int = 0, kinds: tuple[str, ...] = KINDS,
                       progress: bool = False) -> dict[str, Any]:
    """{"clean": accuracy, kind: {"accuracy", "changed" (share of texts the kind altered), "drop"}}."""
    from ..training import evaluate

    def accuracy(rows: list) -> float:
        features = task.encode(rows, tokenizer, labels, max_length)
        return float(evaluate(model, task, features, labels, batch_size, accelerator, pad_id, progress)["accuracy"])

    clean = accuracy(examples)
    out: dict[str, Any] = {"clean": clean, "rows": len(examples), "seed": seed}
    texts = [e.text for e in examples]
    for kind in kinds:
        new = perturb(texts, kind, seed=seed)
        changed = sum(a != b for a, b in zip(texts, new)) / max(len(texts), 1)
        if changed == 0:
            out[kind] = {"accuracy": None, "changed": 0.0, "drop": None}
            continue
        acc = accuracy([dataclasses.replace(e, text=t) for e, t in zip(examples, new)])
        out[kind] = {"accuracy": acc, "changed": changed, "drop": clean - acc}
    return out


def markdown(result: dict[str, Any], split: str) -> str:
    """report.md's robustness table."""
    lines = [f"## Robustness ({split}, {result['rows']} rows, seed {result['seed']})", "",
             "Accuracy on copies of the split with label-preserving perturbations (docs/robustness.md).", "",
             "| perturbation | texts changed | accuracy | change vs clean |", "|---|---|---|---|",
             f"| none (clean) | - | {result['clean']:.4f} | - |"]
    for kind in KINDS:
        r = result.get(kind)
        if r is None:
            continue
        if r["accuracy"] is None:
            lines.append(f"| {kind} | 0% | not tested (nothing to perturb) | - |")
        else:
            lines.append(f"| {kind} | {r['changed']:.0%} | {r['accuracy']:.4f} | {-r['drop']:+.4f} |")
    return "\n".join(lines)


def robustness_section(spec, task, model, tokenizer, splits: dict, features: dict, labels: list[str],
                       metrics: dict, accelerator, pad_id: int, progress: bool) -> list[str]:
    """With ``train.robustness``: the validation split's robustness, added to ``metrics`` and returned as
    report.md sections ([] when not asked or without a validation split)."""
    if not spec.train.robustness:
        return []
    if accelerator.num_processes > 1:  # the report is written by the main process; evaluate() is collective
        print("note: train.robustness is skipped in multi-process runs; run lmkernel eval --robustness on the run")
        return []
    split = "validation" if splits.get("validation") and features.get("validation") else None
    if split is None:
        print("note: train.robustness needs a validation split (data.validation or data.split.validation)")
        return []
    result = perturbed_accuracy(task, model, tokenizer, splits[split].examples, labels, accelerator=accelerator,
                                pad_id=pad_id, max_length=spec.data.max_length,
                                batch_size=spec.train.eval_batch_size, seed=spec.seed, progress=progress)
    metrics[split]["robustness"] = result
    return [markdown(result, split)]


def eval_robustness(loaded, torch_model, examples: list, metrics: dict, accelerator, batch_size: int) -> list[str]:
    """``lmkernel eval --robustness``: the loaded run's robustness on the evaluated file, added to ``metrics``.

    Raises:
        LmkError: the run is not a classifier.
    """
    from ..errors import LmkError

    if loaded.task.name != "classification":
        raise LmkError(f"--robustness is for classification runs; this one is {loaded.task.name}",
                       where=str(loaded.path), fix="leave out --robustness")
    result = perturbed_accuracy(loaded.task, torch_model, loaded.tokenizer, examples, loaded.labels,
                                accelerator=accelerator, pad_id=loaded.tokenizer.pad_token_id or 0,
                                max_length=loaded.card.get("max_length", 512), batch_size=batch_size)
    metrics["robustness"] = result
    return [markdown(result, "eval")]
