"""Classification metrics, computed by scikit-learn (not re-implemented here)."""

from __future__ import annotations

from typing import Any

LOWER_IS_BETTER = frozenset({"loss", "perplexity"})  # every other validation metric: higher is better


def improved(value: float, best: float | None, metric: str) -> bool:
    """Whether ``value`` of ``metric`` beats ``best`` (None: nothing to beat yet)."""
    if best is None:
        return True
    return value < best if metric in LOWER_IS_BETTER else value > best


def classification_metrics(gold: list[int], pred: list[int], labels: list[str]) -> dict[str, Any]:
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

    ids = list(range(len(labels)))
    precision, recall, f1, support = precision_recall_fscore_support(
        gold, pred, labels=ids, zero_division=0
    )
    return {
        "accuracy": float(accuracy_score(gold, pred)) if gold else 0.0,
        "macro_f1": float(f1_score(gold, pred, labels=ids, average="macro", zero_division=0)) if gold else 0.0,
        "examples": len(gold),
        "per_class": {
            lab: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
                  "support": int(support[i])}
            for i, lab in enumerate(labels)
        },
        "confusion_matrix": confusion_matrix(gold, pred, labels=ids).tolist(),
    }
