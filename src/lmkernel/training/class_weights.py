"""Class-weighted cross-entropy for classification (``train.class_weights``): rare labels count more, so
a model cannot score well by predicting the common label only.

``weighted_ce`` is a plain function of logits and labels, so other objectives (label smoothing, R-Drop,
adversarial training) can share it; ``objective`` wraps it in the training loop's objective seam.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from ..errors import LmkError


def weights_for(setting: str | dict[str, float], labels: Sequence[str],
                train_labels: Sequence[str]) -> list[float] | None:
    """One weight per label (in ``labels`` order), or None for ``none``. ``balanced`` is scikit-learn's
    n_rows / (n_labels x rows of the label); a mapping names the weights (unnamed labels weigh 1)."""
    if setting == "none":
        return None
    if setting == "balanced":
        counts = Counter(train_labels)
        n = sum(counts[lab] for lab in labels)
        return [n / (len(labels) * counts[lab]) if counts[lab] else 1.0 for lab in labels]
    assert isinstance(setting, dict)
    unknown = [k for k in setting if k not in labels]
    if unknown:
        raise LmkError(f"train.class_weights names label(s) the training data does not have: {unknown[:5]}",
                       where="train.class_weights", fix=f"use the training labels: {', '.join(labels[:20])}")
    bad = {k: v for k, v in setting.items() if not v > 0}
    if bad:
        raise LmkError(f"train.class_weights must be positive numbers; got {bad}", where="train.class_weights",
                       fix="give each label a weight above 0 (1 = unchanged; drop a label's rows to ignore it)")
    return [float(setting.get(lab, 1.0)) for lab in labels]


def weighted_ce(logits: Any, labels: Any, weights: Any, ignore_index: int = -100) -> Any:
    """Cross-entropy with a weight per label, averaged as torch does (over the summed weights of the rows)."""
    import torch.nn.functional as F

    w = weights.to(device=logits.device, dtype=logits.float().dtype)
    return F.cross_entropy(logits.float().view(-1, logits.shape[-1]), labels.view(-1), weight=w,
                           ignore_index=ignore_index)


def objective(weights: Sequence[float]):
    """The loop objective: the task's forward, the weighted loss backpropagated and logged in its place."""
    import torch

    from .objective import Step

    tensor = torch.tensor(list(weights), dtype=torch.float32)

    def weighted(step: Step):
        out = step.forward()
        loss = weighted_ce(out.logits, step.batch["labels"], tensor)
        step.backward(loss)
        out.loss = loss
        return out

    return weighted


def describe(weights: Sequence[float] | None, labels: Sequence[str], setting: Any) -> str:
    """The report's line: the setting and each label's weight."""
    if weights is None:
        return "none"
    name = setting if isinstance(setting, str) else "given"
    shown = ", ".join(f"{lab} {w:.3g}" for lab, w in list(zip(labels, weights))[:30])
    more = f", ... ({len(labels) - 30} more)" if len(labels) > 30 else ""
    return f"{name}: {shown}{more}"
