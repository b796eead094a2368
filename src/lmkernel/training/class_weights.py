"""Class-weighted cross-entropy for classification (``train.class_weights``): rare labels count more, so
a model cannot score well by predicting the common label only.

The weights join the training loss where label smoothing and R-Drop change it (``regularize``), so every
objective (plain, adversarial, a penalty around them) trains the weighted loss.
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


def describe(weights: Sequence[float] | None, labels: Sequence[str], setting: Any) -> str:
    """The report's line: the setting and each label's weight."""
    if weights is None:
        return "none"
    name = setting if isinstance(setting, str) else "given"
    shown = ", ".join(f"{lab} {w:.3g}" for lab, w in list(zip(labels, weights))[:30])
    more = f", ... ({len(labels) - 30} more)" if len(labels) > 30 else ""
    return f"{name}: {shown}{more}"
