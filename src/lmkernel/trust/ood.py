"""Out-of-distribution scores for a classifier: Mahalanobis distance on its pooled features.

Lee et al. 2018 / Podolskiy et al. 2021: fit one mean per class and a covariance shared by the
classes on the training texts' pooled features (L2-normalised first, which keeps one long feature
from dominating); a text's score is its squared distance to the nearest class mean under that
covariance. Max softmax probability (``msp``) is the baseline (``bench/trust_ood.py``
compares them): a fine-tuned head is confidently wrong on near-domain text far more often than its
features are close to a class. Higher score = more out-of-distribution.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

METHODS = ("mahalanobis", "msp")


def _unit(x: Any) -> Any:
    import numpy as np

    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


@dataclass
class Mahalanobis:
    """Class means (classes, hidden) and the shared precision matrix (hidden, hidden), float32."""

    means: Any
    precision: Any

    def __post_init__(self) -> None:
        """Whiten once: with P = W Wᵀ the distance is |xW - mW|², summed over real differences; the
        expanded form xPx - 2xPm + mPm cancels catastrophically in float32 when P is large."""
        import numpy as np

        p = np.asarray(self.precision, dtype=np.float64)
        self._white = np.linalg.cholesky((p + p.T) / 2).astype(np.float32)
        self._white_means = (np.asarray(self.means, dtype=np.float32) @ self._white)

    @classmethod
    def fit(cls, features: Any, labels: Any, num_labels: int) -> Mahalanobis:
        """Means of the classes present and the Ledoit-Wolf shrunk covariance of the centred features
        (shrinkage keeps the precision finite when texts are few next to the feature width)."""
        import numpy as np
        from sklearn.covariance import LedoitWolf

        x = _unit(np.asarray(features, dtype=np.float64))
        y = np.asarray(labels)
        present = [c for c in range(num_labels) if (y == c).any()]
        means = np.stack([x[y == c].mean(0) for c in present])
        centred = x - means[np.searchsorted(present, y)]
        precision = LedoitWolf(assume_centered=True).fit(centred).precision_
        return cls(means.astype(np.float32), precision.astype(np.float32))

    def score(self, features: Any) -> Any:
        """Squared distance to the nearest class mean, one float per row."""
        import numpy as np

        z = _unit(np.asarray(features, dtype=np.float32)) @ self._white
        out = np.empty(len(z), dtype=np.float32)
        for s in range(0, len(z), 256):  # (rows, classes, hidden) differences, a bounded block at a time
            diff = z[s:s + 256, None, :] - self._white_means[None]
            out[s:s + 256] = np.einsum("bch,bch->bc", diff, diff).min(1)
        return out

    def tensors(self) -> dict[str, Any]:
        """What trust.safetensors stores (the whitening is recomputed on load)."""
        return {"ood.means": self.means, "ood.precision": self.precision}


def msp_score(probs: Any) -> Any:
    """1 - max softmax probability."""
    return 1.0 - probs.max(1)

