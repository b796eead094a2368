"""Ranking pieces of a search: metadata filters, top-k of a score vector, reciprocal rank fusion."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import LmkError
from .chunking import Chunk

RRF_K = 60  # Cormack et al.'s constant: flattens the head so neither list dominates by rank 1 alone
DEPTH = 100  # how deep each list goes into the fusion


def matches_value(value: Any, wanted: list[str]) -> bool:
    """Whether a metadata value (or any element of a list value) equals one of ``wanted``, compared as text."""
    values = value if isinstance(value, list) else [value]
    return any(str(v) in wanted for v in values)


def filter_mask(chunks: list[Chunk], filters: dict[str, Any] | None) -> np.ndarray | None:
    """Which chunks pass ``filters`` (key → value, or a list meaning any of them; values compared as
    text, ``doc_id`` is a key too); None when there is nothing to filter on."""
    if not filters:
        return None
    known = {"doc_id"}.union(*(c.meta.keys() for c in chunks)) if chunks else {"doc_id"}
    for key in filters:
        if key not in known and chunks:
            raise LmkError(f"no document in the index has the metadata field {key!r}", where="filters",
                           fix=f"filter on one of: {', '.join(sorted(known))}")
    mask = np.ones(len(chunks), dtype=bool)
    for key, want in filters.items():
        wanted = [str(w) for w in (want if isinstance(want, (list, tuple, set)) else [want])]
        for i, chunk in enumerate(chunks):
            if mask[i]:
                value = chunk.doc_id if key == "doc_id" else chunk.meta.get(key)
                mask[i] = value is not None and matches_value(value, wanted)
    return mask


def top(scores: np.ndarray, k: int, mask: np.ndarray | None, positive: bool = False) -> np.ndarray:
    """Indices of the ``k`` best scores (best first) among the chunks ``mask`` allows; with
    ``positive``, only scores above zero count (BM25: no query term, no match)."""
    allowed = np.ones(len(scores), dtype=bool) if mask is None else mask.copy()
    if positive:
        allowed &= scores > 0
    idx = np.flatnonzero(allowed)
    if len(idx) > k:
        idx = idx[np.argpartition(-scores[idx], k - 1)[:k]]
    return idx[np.lexsort((idx, -scores[idx]))]  # stable for ties: lower index first


def rrf(lists: list[np.ndarray], weights: list[float], k: int = RRF_K) -> dict[int, float]:
    """Reciprocal rank fusion: each list adds ``weight / (k + rank)`` (rank from 1) to its chunks."""
    fused: dict[int, float] = {}
    for ranked, weight in zip(lists, weights):
        for rank, i in enumerate(ranked.tolist(), start=1):
            fused[i] = fused.get(i, 0.0) + weight / (k + rank)
    return fused
