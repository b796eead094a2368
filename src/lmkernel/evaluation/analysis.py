"""Error analysis of an evaluation: the wrong predictions, metrics per slice, calibration, warnings.

Built from the per-example outputs the evaluation loop already computed (no second pass): the
classification task's ``pred``/``gold``/``confidence`` per text, the NER task's tag ids per window
(each window knows its sentence through the feature's ``example`` key).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from .slices import length_buckets, script_of

ECE_BINS = 15
SINGLE_CLASS_SHARE = 0.95  # warn when one label takes at least this share of the predictions
MIN_WARN_EXAMPLES = 20  # below this many examples the chance warning means nothing
MIN_SINGLE_CLASS_EXAMPLES = 5  # one label for (nearly) all of even a few rows of several labels is telling


@dataclass
class ErrorAnalysis:
    """One split's analysis. ``errors``: wrong rows, most confident first; ``slices``: slice kind ->
    slice name -> the task's metrics on it; ``calibration``: ECE/MCE and the bins (classification)."""

    split: str
    errors: list[dict[str, Any]] = field(default_factory=list)
    slices: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    calibration: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)


def calibration(confidence: list[float], correct: list[bool], bins: int = ECE_BINS) -> dict[str, Any]:
    """Expected and maximum calibration error over equal-width confidence bins (Guo et al. 2017):
    ECE = sum over bins of (share of examples) x |accuracy - mean confidence|; MCE = the largest gap.
    Bins are (lo, hi], the first one [0, hi]."""
    n = len(confidence)
    table = []
    for b in range(bins):
        lo, hi = b / bins, (b + 1) / bins
        members = [i for i, c in enumerate(confidence) if (lo < c <= hi) or (b == 0 and c <= hi)]
        if members:
            acc = sum(correct[i] for i in members) / len(members)
            conf = sum(confidence[i] for i in members) / len(members)
            table.append({"lo": lo, "hi": hi, "count": len(members), "accuracy": acc, "confidence": conf})
    ece = sum(r["count"] / n * abs(r["accuracy"] - r["confidence"]) for r in table) if n else 0.0
    mce = max((abs(r["accuracy"] - r["confidence"]) for r in table), default=0.0)
    return {"ece": ece, "mce": mce, "bins": table}


def prediction_warnings(gold: list[int], pred: list[int], labels: list[str]) -> list[str]:
    """A model that predicts one class for nearly every text, or whose accuracy is within noise of
    chance. Chance = max(majority-class share of the gold labels, 1 / number of labels); noise = two
    binomial standard errors of that rate at this many examples."""
    n = len(gold)
    if n < MIN_SINGLE_CLASS_EXAMPLES or len(labels) < 2:
        return []
    out = []
    top = max(set(pred), key=pred.count)
    share = pred.count(top) / n
    if share >= SINGLE_CLASS_SHARE and len(set(gold)) > 1:
        out.append(f"the model predicted {labels[top]!r} for {share:.0%} of the {n} rows, whose gold labels are "
                   f"{len(set(gold))} (rule: one label for at least {SINGLE_CLASS_SHARE:.0%}): it has likely not "
                   "learned the task; try a larger train.lr (e.g. 3x), more train.epochs, "
                   "train.class_weights: balanced if the labels are unbalanced, or more rows per label")
    if n < MIN_WARN_EXAMPLES:
        return out
    chance = max(max(gold.count(c) for c in set(gold)) / n, 1 / len(labels))
    accuracy = sum(g == p for g, p in zip(gold, pred)) / n
    noise = 2 * math.sqrt(chance * (1 - chance) / n)
    if accuracy <= chance + noise:
        out.append(f"accuracy {accuracy:.3f} is within noise of chance {chance:.3f} (rule: accuracy at most chance "
                   f"+ 2 standard errors = {chance + noise:.3f}; chance = max(majority-class share, "
                   f"1/{len(labels)} labels)): the model is not better than guessing")
    return out


def _slice_metrics(task: Any, outputs: dict[str, list], example_of: list[int], texts: list[str],
                   labels: list[str]) -> dict[str, dict[str, dict[str, Any]]]:
    """The task's own metrics on each script and each length quartile (scalars only)."""
    kinds = {"script": [script_of(t) for t in texts], "length": length_buckets([len(t) for t in texts])}
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for kind, names in kinds.items():
        groups: dict[str, list[int]] = {}
        for row, ex in enumerate(example_of):
            groups.setdefault(names[ex], []).append(row)
        out[kind] = {}
        for name in sorted(groups, key=lambda g: (len(g.split("-")[0]), g)):
            rows = groups[name]
            sub = {k: [v[r] for r in rows] for k, v in outputs.items() if len(v) == len(example_of)}
            m = task.metrics(sub, labels)
            out[kind][name] = {"examples": len({example_of[r] for r in rows}),
                               **{k: v for k, v in m.items() if isinstance(v, float)}}
    return out


def analyze(task: Any, split: str, examples: list[Any], features: list[dict], kept: dict[str, Any],
            labels: list[str]) -> ErrorAnalysis:
    """The analysis of one evaluated split; ``kept``: the loop's outputs plus ``index`` (feature of each row)."""
    outputs = {k: v for k, v in kept.items() if k != "index"}
    example_of = [features[i].get("example", i) for i in kept["index"]]
    texts = [e.text for e in examples]
    result = ErrorAnalysis(split)
    result.slices = _slice_metrics(task, outputs, example_of, texts, labels)
    if "confidence" in outputs:  # classification: one row per text
        gold, pred, conf = outputs["gold"], outputs["pred"], outputs["confidence"]
        result.calibration = calibration(conf, [g == p for g, p in zip(gold, pred)])
        result.warnings = prediction_warnings(gold, pred, labels)
        rows = [{"split": split, "line": examples[ex].line, "text": examples[ex].text, "gold": labels[g],
                 "predicted": labels[p], "confidence": round(c, 6)}
                for ex, g, p, c in zip(example_of, gold, pred, conf) if g != p]
        result.errors = sorted(rows, key=lambda r: -r["confidence"])
    elif outputs.get("pred") and isinstance(outputs["pred"][0], list):  # NER: tag ids per window
        result.errors = _ner_errors(split, examples, example_of, outputs, labels)
    return result


def _ner_errors(split: str, examples: list[Any], example_of: list[int], outputs: dict[str, list],
                labels: list[str]) -> list[dict[str, Any]]:
    """Sentences whose predicted entities differ from the gold ones (windows joined back in word order)."""
    from seqeval.metrics.sequence_labeling import get_entities

    joined: dict[int, tuple[list[str], list[str]]] = {}
    for ex, g, p in zip(example_of, outputs["gold"], outputs["pred"]):
        gold, pred = joined.setdefault(ex, ([], []))
        gold.extend(labels[i] for i in g)
        pred.extend(labels[i] for i in p)
    rows = []
    for ex in sorted(joined):
        gold, pred = joined[ex]
        words = examples[ex].fields.get("tokens") or examples[ex].text.split()

        def spans(tags: list[str], words: list[str] = words) -> list[dict[str, Any]]:
            return [{"type": t, "text": " ".join(words[s:e + 1]), "start": s, "end": e + 1}
                    for t, s, e in get_entities(tags)]

        if gold != pred:
            rows.append({"split": split, "line": examples[ex].line, "text": examples[ex].text,
                         "gold": spans(gold), "predicted": spans(pred)})
    return rows
