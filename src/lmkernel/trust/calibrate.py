"""Thresholds and reference statistics of a trust profile, from a classifier's validation predictions.

Thresholds are chosen on validation texts the model never trained on, so the rates they promise
(how many in-distribution texts pass, how accurate the unflagged ones are) hold on new text from the
same source. The reference is what the monitor compares served traffic against.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

LOW_CONFIDENCE_TARGET = 0.5  # flagged texts: those whose confidence band is right less often than this
MIN_FLAGGED = 5  # a band of fewer validation texts says nothing about accuracy
FALLBACK_QUANTILE = 0.05
OOD_PASS = 0.95  # share of in-distribution validation texts the ood threshold lets through
CONFIDENCE_BINS = 10
LENGTH_BINS = 10


def low_confidence_threshold(confidence: Any, correct: Any) -> tuple[float, str]:
    """The highest confidence t such that validation texts below t are right less often than the target
    (at least ``MIN_FLAGGED`` of them): 50 %, or half the overall accuracy when that is lower (a weak
    model would otherwise flag nearly everything); where no such band exists, the 5 % quantile."""
    import numpy as np

    order = np.argsort(confidence, kind="stable")
    conf = np.asarray(confidence, dtype=np.float64)[order]
    hits = np.cumsum(np.asarray(correct, dtype=np.float64)[order])
    counts = np.arange(1, len(conf) + 1)
    target = min(LOW_CONFIDENCE_TARGET, float(hits[-1] / counts[-1]) / 2) if len(conf) else LOW_CONFIDENCE_TARGET
    below_ok = (counts >= MIN_FLAGGED) & (hits / counts < target)
    # t = the next text's confidence, so the texts before it (and exactly these) fall below t
    if below_ok[:-1].any():
        k = int(np.flatnonzero(below_ok[:-1])[-1])
        t = float(conf[k + 1])
        acc = hits[k] / counts[k]
        return t, (f"highest confidence below which validation accuracy is under {target:.0%} "
                   f"({counts[k]} of {len(conf)} validation texts, accuracy {acc:.2f})")
    t = float(np.quantile(conf, FALLBACK_QUANTILE)) if len(conf) else 0.0
    return t, (f"{FALLBACK_QUANTILE:.0%} quantile of validation confidence (no band of {MIN_FLAGGED}+ validation "
               f"texts was right less than {target:.0%} of the time)")


def ood_threshold(scores: Any) -> tuple[float, str]:
    """The score ``OOD_PASS`` of the in-distribution validation texts stay at or under."""
    import numpy as np

    t = float(np.quantile(np.asarray(scores, dtype=np.float64), OOD_PASS)) if len(scores) else 0.0
    return t, f"{OOD_PASS:.0%} quantile of the validation texts' scores ({len(scores)} texts): about " \
              f"{1 - OOD_PASS:.0%} of in-distribution text is flagged"


def histogram(values: Sequence[float], edges: Sequence[float]) -> dict[str, list[float]]:
    """Shares per bin (sum 1); values outside the edges count in the first or last bin."""
    import numpy as np

    v = np.clip(np.asarray(values, dtype=np.float64), edges[0], edges[-1])
    counts, _ = np.histogram(v, bins=np.asarray(edges, dtype=np.float64))
    total = max(int(counts.sum()), 1)
    return {"edges": [round(float(e), 6) for e in edges], "shares": [round(c / total, 6) for c in counts.tolist()]}


def length_hist_edges(lengths: Sequence[int]) -> list[float]:
    """Decile boundaries of validation lengths (distinct, from 0): bins that each hold ~10 % of validation."""
    import numpy as np

    qs = np.quantile(np.asarray(lengths, dtype=np.float64), np.linspace(0, 1, LENGTH_BINS + 1)[1:]) if lengths else []
    edges = sorted({0.0, *(float(round(q)) for q in qs)})
    return edges if len(edges) > 1 else [0.0, 1.0]


def reference(texts: Sequence[str], predicted: Sequence[str], confidence: Sequence[float], labels: Sequence[str],
              ood: Sequence[bool] | None, low: Sequence[bool]) -> dict[str, Any]:
    """Validation statistics the monitor measures drift against (shares of predicted labels, not gold).
    Scripts are read with the monitor's own rule, so live traffic and its reference are binned alike."""
    from .monitor import SCRIPTS, script_of

    n = len(texts)
    count = Counter(predicted)
    scripts = Counter(script_of(t) for t in texts)
    lengths = [len(t) for t in texts]
    return {
        "n": n,
        "label_shares": {lab: round(count.get(lab, 0) / max(n, 1), 6) for lab in labels},
        "confidence": histogram(confidence, [i / CONFIDENCE_BINS for i in range(CONFIDENCE_BINS + 1)]),
        "length": histogram(lengths, length_hist_edges(lengths)),
        "script_shares": {s: round(scripts.get(s, 0) / max(n, 1), 6) for s in SCRIPTS},
        "ood_rate": round(sum(map(bool, ood)) / max(n, 1), 6) if ood is not None else None,
        "low_confidence_rate": round(sum(map(bool, low)) / max(n, 1), 6),
    }


UNKNOWN_FLOOR = 0.2  # never flag a text for fewer unknown tokens than this share (an emoji, a rare symbol)
UNKNOWN_MARGIN = 0.1  # above the validation texts' 99th percentile


def unknown_share_threshold(tokenizer: Any, texts: Sequence[str], max_length: int) -> dict[str, Any] | None:
    """The share of unknown tokens above which a text is foreign to the model: validation's 99th percentile
    plus a margin, at least ``UNKNOWN_FLOOR``; None when the tokenizer has no unknown token (byte-level BPE
    reads every script) or there are no texts."""
    import numpy as np

    from .profile import unknown_shares

    if getattr(tokenizer, "unk_token_id", None) is None or not texts:
        return None
    ids = tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"]  # as predict reads them
    p99 = float(np.quantile(np.asarray(unknown_shares(ids, tokenizer.unk_token_id)), 0.99))
    threshold = max(UNKNOWN_FLOOR, p99 + UNKNOWN_MARGIN)
    return {"threshold": round(threshold, 6), "validation_p99": round(p99, 6),
            "how": f"validation's 99th percentile of unknown-token shares ({p99:.3f}) + {UNKNOWN_MARGIN}, "
                   f"at least {UNKNOWN_FLOOR}"}


def build_profile(model: Any, tokenizer: Any, labels: list[str], train: Sequence[tuple[str, str]],
                  validation: Sequence[tuple[str, str]], *, max_length: int, batch_size: int = 64,
                  seed: int = 0):
    """A ``TrustProfile`` for a trained classifier: the detector fitted on (a seeded sample of at most
    ``FIT_CAP``) training texts, thresholds and reference from the validation texts."""
    import random

    import numpy as np

    from .features import collect
    from .ood import Mahalanobis, msp_score
    from .profile import FIT_CAP, VERSION, TrustProfile

    index = {lab: i for i, lab in enumerate(labels)}
    val_texts = [t for t, _ in validation]
    probs, feats = collect(model, tokenizer, val_texts, max_length=max_length, batch_size=batch_size)
    detector = None
    if feats is not None:
        fit = list(train) if len(train) <= FIT_CAP else random.Random(seed).sample(list(train), FIT_CAP)
        _, train_feats = collect(model, tokenizer, [t for t, _ in fit], max_length=max_length, batch_size=batch_size)
        detector = Mahalanobis.fit(train_feats, [index[y] for _, y in fit], len(labels))
        scores, method = detector.score(feats), "mahalanobis"
        described = ("Mahalanobis distance of the L2-normalised pooled features to the nearest class mean "
                     f"(means and shared Ledoit-Wolf covariance fitted on {len(fit)} training texts)")
    else:
        scores, method = msp_score(probs), "msp"
        described = "1 - max softmax probability (this model's pooled features cannot be captured)"
    gold = np.asarray([index[y] for _, y in validation])
    conf = probs.max(1)
    low_t, low_how = low_confidence_threshold(conf, probs.argmax(1) == gold)
    ood_t, ood_how = ood_threshold(scores)
    predicted = [labels[i] for i in probs.argmax(1)]
    data = {"version": VERSION, "low_confidence": {"threshold": low_t, "how": low_how},
            "ood": {"method": method, "threshold": ood_t, "how": f"{described}; threshold: {ood_how}",
                    "unknown_share": unknown_share_threshold(tokenizer, val_texts, max_length)},
            "reference": reference(val_texts, predicted, conf.tolist(), labels, (scores > ood_t).tolist(),
                                   (conf < low_t).tolist())}
    return TrustProfile(data, detector)
