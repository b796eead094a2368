"""Ranking metrics for retrieval: recall@k, MRR@k and nDCG@k from a query × document score matrix.

Binary relevance, as the BEIR and MTEB retrieval tables report them: a query may have several
relevant documents; recall@k is the share of them found in the top k, MRR@k the reciprocal rank of
the first one (0 past k), nDCG@k the discounted gain of the top k over the best possible.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def ranking_metrics(scores: np.ndarray, relevant: Sequence[set[int]], ks: Sequence[int] = (1, 5, 10)
                    ) -> dict[str, float]:
    """``scores``: [queries, documents] (higher is better); ``relevant[q]``: the documents relevant to
    query q (queries with none are left out). Keys: ``recall@k`` for each k, ``mrr@10`` and ``ndcg@10``."""
    depth = max(max(ks), 10)
    sums = {f"recall@{k}": 0.0 for k in ks} | {"mrr@10": 0.0, "ndcg@10": 0.0}
    counted = 0
    discount = 1.0 / np.log2(np.arange(2, depth + 2))
    for q, rel in enumerate(relevant):
        if not rel:
            continue
        counted += 1
        row = np.asarray(scores[q], dtype=np.float64)
        top = np.argsort(-row, kind="stable")[:depth]  # ties keep document order: deterministic
        hits = np.fromiter((d in rel for d in top), dtype=bool, count=len(top))
        for k in ks:
            sums[f"recall@{k}"] += hits[:k].sum() / len(rel)
        first = np.flatnonzero(hits[:10])
        sums["mrr@10"] += 1.0 / (first[0] + 1) if len(first) else 0.0
        ideal = discount[:min(len(rel), 10)].sum()
        sums["ndcg@10"] += float((hits[:10] * discount[:len(hits[:10])]).sum() / ideal)
    return {k: float(v / counted) if counted else 0.0 for k, v in sums.items()}
