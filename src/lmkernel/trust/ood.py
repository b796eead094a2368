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
        """Whiten once (P = W Wᵀ, so the distance is |xW - mW|²), in float64: the expanded form
        |z|² - 2 z·m + |m|² cancels catastrophically in float32 when P is large."""
        import numpy as np

        p = np.asarray(self.precision, dtype=np.float64)
        self._white = np.linalg.cholesky((p + p.T) / 2)
        self._white_means_t = np.ascontiguousarray((np.asarray(self.means, dtype=np.float64) @ self._white).T)
        self._mean_norms = (self._white_means_t ** 2).sum(0)

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
        """Squared distance to the nearest class mean, one float32 per row. Row by row (vector-matrix
        products): a matrix product this small is parallelised by the BLAS, whose threads then wait on
        the model's for the same cores, far slower than a product per row."""
        import numpy as np

        x = _unit(np.asarray(features, dtype=np.float64))
        out = np.empty(len(x), dtype=np.float32)
        for i, row in enumerate(x):
            z = row @ self._white
            out[i] = max(float((z @ z - 2 * z @ self._white_means_t + self._mean_norms).min()), 0.0)
        return out

    def tensors(self) -> dict[str, Any]:
        """What trust.safetensors stores (the whitening is recomputed on load)."""
        return {"ood.means": self.means, "ood.precision": self.precision}


def msp_score(probs: Any) -> Any:
    """1 - max softmax probability."""
    return 1.0 - probs.max(1)

