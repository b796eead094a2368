"""Entity-level NER metrics, computed by seqeval (the conlleval definition, not re-implemented here).

An entity counts as found only when its type and both boundaries match. ``per_class`` is keyed by
entity type (PER, LOC, ...), which is what people read; ``support`` is the number of gold entities.
"""

from __future__ import annotations

import warnings
from typing import Any


def ner_metrics(gold: list[list[str]], pred: list[list[str]]) -> dict[str, Any]:
    """Micro precision/recall/F1 over entities, per-type scores and token accuracy."""
    from seqeval.metrics import accuracy_score, classification_report

    sentences = len(gold)
    if not any(gold) and not any(pred):
        return {"f1": 0.0, "precision": 0.0, "recall": 0.0, "token_accuracy": 0.0, "sentences": sentences,
                "entities": 0, "per_class": {}}
    with warnings.catch_warnings():  # seqeval warns about types absent from gold or pred: 0 is the answer
        warnings.simplefilter("ignore")
        report = classification_report(gold, pred, output_dict=True, zero_division=0)
        accuracy = accuracy_score(gold, pred) if any(gold) else 0.0
    overall = report.get("micro avg", {"precision": 0.0, "recall": 0.0, "f1-score": 0.0, "support": 0})
    per_class = {kind: {"precision": float(r["precision"]), "recall": float(r["recall"]),
                        "f1": float(r["f1-score"]), "support": int(r["support"])}
                 for kind, r in sorted(report.items()) if not kind.endswith(" avg")}
    return {"f1": float(overall["f1-score"]), "precision": float(overall["precision"]),
            "recall": float(overall["recall"]), "token_accuracy": float(accuracy), "sentences": sentences,
            "entities": int(overall["support"]), "per_class": per_class}
