"""The trust profile of a classification artifact: when to flag a prediction as low-confidence or
out-of-distribution, and the validation statistics that served traffic is compared against.

Written at training time beside the weights (``trust.json``, plus ``trust.safetensors`` holding the
detector's class means and precision matrix), read by prediction, the server, the guards and the
monitor through :func:`load_profile`. The schema is in ``docs/trust.md``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import LmkError
from ..fsutil import atomic_write, atomic_write_json
from .ood import Mahalanobis, msp_score

TRUST_JSON = "trust.json"
TRUST_TENSORS = "trust.safetensors"
VERSION = 1
FIT_CAP = 2000  # training texts the detector's means and covariance are fitted on, at most (seeded sample)
_FIX = "the trust profile is damaged or was edited by hand; delete trust.json and trust.safetensors to serve " \
       "without it, or retrain the run (`lmkernel run SPEC`) to calibrate a new one"


@dataclass
class TrustProfile:
    """``data``: the trust.json object; ``detector``: the Mahalanobis detector when ``ood.method`` uses one."""

    data: dict[str, Any]
    detector: Mahalanobis | None = None

    @property
    def low_confidence_threshold(self) -> float:
        return float(self.data["low_confidence"]["threshold"])

    @property
    def ood_method(self) -> str:
        return str(self.data["ood"]["method"])

    @property
    def ood_threshold(self) -> float:
        return float(self.data["ood"]["threshold"])

    @property
    def needs_features(self) -> bool:
        return self.detector is not None

    def ood_scores(self, probs: Any, features: Any | None) -> Any | None:
        """One score per row (higher = more foreign), or None where the detector's features are missing."""
        import numpy as np

        probs = np.asarray(probs, dtype=np.float32)
        if self.detector is None:
            return msp_score(probs)
        if features is None or features.shape[-1] != self.detector.means.shape[1]:
            return None  # no features, or a model of another width (a distilled student): nothing to measure
        return self.detector.score(features)

    @property
    def unknown_threshold(self) -> float | None:
        """Above this share of unknown tokens a text is out of distribution (None: no such signal)."""
        u = self.data["ood"].get("unknown_share")
        return float(u["threshold"]) if isinstance(u, dict) else None

    def flags(self, probs: Any, features: Any | None = None,
              token_ids: list[list[int]] | None = None, unk_id: int | None = None) -> list[dict[str, Any]]:
        """``{"ood", "ood_score", "low_confidence"}`` per row. ``ood``: the detector's score above its threshold,
        or (given the rows' ``token_ids``) more unknown tokens than validation texts had — text in a script
        the vocabulary cannot read, whose features can still land near a class mean. ``ood_score``: the
        detector's; both None without the features (unless the unknown tokens alone decide)."""
        import numpy as np

        probs = np.asarray(probs, dtype=np.float32)
        scores = self.ood_scores(probs, features)
        low = probs.max(1) < self.low_confidence_threshold
        limit = self.unknown_threshold
        unknown = (unknown_shares(token_ids, unk_id) if limit is not None and token_ids is not None
                   else [0.0] * len(probs))
        rows = []
        for i in range(len(probs)):
            foreign = unknown[i] > limit if limit is not None else False
            ood = None if scores is None else bool(scores[i] > self.ood_threshold)
            rows.append({"ood": True if foreign else ood,
                         "ood_score": None if scores is None else round(float(scores[i]), 6),
                         "low_confidence": bool(low[i])})
        return rows


def unknown_shares(token_ids: list[list[int]], unk_id: int | None) -> list[float]:
    """Per row, the share of its tokens the vocabulary does not know (0 without an unknown token)."""
    if unk_id is None:
        return [0.0] * len(token_ids)
    return [list(ids).count(unk_id) / max(len(ids), 1) for ids in token_ids]


def save_profile(model_dir: Path, profile: TrustProfile) -> None:
    """trust.safetensors first, then trust.json (whose presence means a profile), each atomically."""
    from safetensors.numpy import save_file

    model_dir = Path(model_dir)
    if profile.detector is not None:
        tensors = {k: v.copy() for k, v in profile.detector.tensors().items()}
        atomic_write(model_dir / TRUST_TENSORS, lambda p: save_file(tensors, str(p)))
    atomic_write_json(model_dir / TRUST_JSON, profile.data)


def load_profile(model_dir: str | Path) -> TrustProfile | None:
    """The artifact's trust profile, None when it has none (a run trained before profiles, or not a classifier).

    Raises:
        LmkError: trust.json or trust.safetensors is unreadable or does not match the schema.
    """
    model_dir = Path(model_dir)
    path = model_dir / TRUST_JSON
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise LmkError(f"trust profile {path} is unreadable: {e}", where=str(path), fix=_FIX) from e
    _check(data, str(path))
    detector = _load_detector(model_dir) if data["ood"]["method"] == "mahalanobis" else None
    return TrustProfile(data, detector)


def _number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _check(data: Any, where: str) -> None:
    """The keys and types readers rely on."""
    def bad(what: str) -> LmkError:
        return LmkError(f"trust profile {where}: {what}", where=where, fix=_FIX)

    if not isinstance(data, dict):
        raise bad("not a JSON object")
    if data.get("version") != VERSION:
        raise bad(f"version {data.get('version')!r}; this lmkernel reads version {VERSION}")
    for key in ("low_confidence", "ood", "reference"):
        if not isinstance(data.get(key), dict):
            raise bad(f"{key!r} is missing or not an object")
    for key in ("low_confidence", "ood"):
        if not _number(data[key].get("threshold")):
            raise bad(f"{key}.threshold must be a finite number, got {data[key].get('threshold')!r}")
    if data["ood"].get("method") not in ("mahalanobis", "msp"):
        raise bad(f"unknown ood.method {data['ood'].get('method')!r} (known: mahalanobis, msp)")
    unknown = data["ood"].get("unknown_share")  # absent in profiles written before it existed
    if unknown is not None and not (isinstance(unknown, dict) and _number(unknown.get("threshold"))):
        raise bad(f"ood.unknown_share must be an object with a finite threshold, got {unknown!r}")


def _load_detector(model_dir: Path) -> Mahalanobis:
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    path = model_dir / TRUST_TENSORS
    try:
        t = load_file(str(path))
        means, precision = t["ood.means"], t["ood.precision"]
    except (OSError, KeyError, SafetensorError) as e:
        raise LmkError(f"trust profile tensors {path} are missing or unreadable: {e}", where=str(path),
                       fix=_FIX) from e
    if means.ndim != 2 or precision.shape != (means.shape[1], means.shape[1]):
        raise LmkError(f"trust profile tensors {path}: means {means.shape} and precision {precision.shape} do not fit",
                       where=str(path), fix=_FIX)
    return Mahalanobis(means, precision)
