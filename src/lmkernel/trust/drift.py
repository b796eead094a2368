"""Input drift: a window's histograms against the reference stored with the model.

Two measures per feature (labels, confidence, length, script): the population stability index
(PSI; the credit-scoring convention reads < 0.1 as stable, 0.1-0.25 as a shift, > 0.25 as a large
one) and the Jensen-Shannon distance (0 same, 1 disjoint; symmetric and bounded, so it reads the
same for any bin count). Window counts get half a count per bin before comparing, and reference
shares a floor, so an empty bin on either side does not make the PSI infinite and a small window
does not swing it. Below ``MIN_COUNT`` records nothing is compared: a handful of texts says
nothing about a distribution, and alert rules add their own ``min_count``.
"""

from __future__ import annotations

import math
from typing import Any

DRIFT_FEATURES = ("label", "confidence", "length", "script")
MIN_COUNT = 30
REF_FLOOR = 1e-4  # a share the reference never saw is treated as rare, not impossible
SMOOTH = 0.5  # pseudo-count per bin added to the window
CONF_EDGES = [round(0.1 * i, 1) for i in range(11)]
LENGTH_EDGES = [0, 16, 32, 64, 96, 128, 192, 256, 384, 512, 1024, 4096]


def default_reference() -> dict[str, Any]:
    """Histogram edges to bin by when the model has no reference (the shares are then empty)."""
    return {"confidence": {"edges": CONF_EDGES, "shares": []}, "length": {"edges": LENGTH_EDGES, "shares": []}}


def build_reference(labels: list[str], confidences: list[float], texts: list[str],
                    ood: list[bool] | None = None, low_confidence: list[bool] | None = None) -> dict[str, Any]:
    """The ``reference`` section of trust.json from predictions (labels, max probabilities, the texts), for a
    model without a trained profile or a test: the same statistics a run's profile stores (``calibrate.reference``)."""
    from .calibrate import reference

    n = len(labels)
    if not n or len(confidences) != n or len(texts) != n:
        raise ValueError("build_reference needs one label, confidence and text per example")
    ref = reference(texts, labels, confidences, sorted(set(labels)), ood,
                    low_confidence if low_confidence is not None else [False] * n)
    if low_confidence is None:
        ref["low_confidence_rate"] = None  # never measured: no rate to compare with
    return ref


def compare(reference: dict[str, Any] | None, feature: str, stats: Any) -> dict[str, float] | None:
    """PSI and JS distance of a window (``monitor.Stats``) against the reference for one feature; None
    when there is no reference for it or fewer than ``MIN_COUNT`` records to compare."""
    if not reference:
        return None
    pair = _counts_and_shares(reference, feature, stats)
    if pair is None:
        return None
    counts, shares = pair
    n = sum(counts)
    if n < MIN_COUNT or not shares or len(counts) != len(shares):
        return None
    return {"psi": round(psi(counts, shares), 6), "js": round(js_distance(counts, shares), 6), "n": n}


def _counts_and_shares(reference: dict[str, Any], feature: str, stats: Any) -> tuple[list, list] | None:
    if feature == "label":
        ref = reference.get("label_shares") or {}
        keys = sorted(set(ref) | set(stats.labels))
        return [stats.labels.get(k, 0) for k in keys], [float(ref.get(k, 0.0)) for k in keys]
    if feature == "script":
        ref = reference.get("script_shares") or {}
        keys = ("latin", "han", "other")
        return [stats.scripts.get(k, 0) for k in keys], [float(ref.get(k, 0.0)) for k in keys]
    if feature == "confidence":
        return list(stats.conf_ref), list((reference.get("confidence") or {}).get("shares") or [])
    if feature == "length":
        return list(stats.len_ref), list((reference.get("length") or {}).get("shares") or [])
    raise ValueError(f"unknown drift feature {feature!r}")


def _smoothed(counts: list[int], shares: list[float]) -> tuple[list[float], list[float]]:
    n = sum(counts) + SMOOTH * len(counts)
    p = [(c + SMOOTH) / n for c in counts]
    floored = [max(float(s), REF_FLOOR) for s in shares]
    total = sum(floored)
    return p, [s / total for s in floored]


def psi(counts: list[int], shares: list[float]) -> float:
    """Population stability index of window counts against reference shares."""
    p, q = _smoothed(counts, shares)
    return sum((a - b) * math.log(a / b) for a, b in zip(p, q))


def js_distance(counts: list[int], shares: list[float]) -> float:
    """Jensen-Shannon distance (base 2, in [0, 1]) of window counts against reference shares."""
    p, q = _smoothed(counts, shares)
    m = [(a + b) / 2 for a, b in zip(p, q)]
    div = sum(a * math.log2(a / c) for a, c in zip(p, m)) / 2 + sum(b * math.log2(b / c) for b, c in zip(q, m)) / 2
    return math.sqrt(max(div, 0.0))
