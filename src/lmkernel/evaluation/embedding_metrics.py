"""The embedding task's held-out metrics, from the vectors its evaluation gathered.

Every format gets every metric, so ``train.metric`` means the same thing whatever the data:

- ``spearman``: rank correlation between the pairs' cosine and their similarity. Scored pairs: against
  the gold score (the STS benchmark figure). Pairs and triplets: against match (1) / no match (0) over
  the positives and the negatives (triplets: the hard negatives; pairs: each anchor with the next row's
  positive), i.e. how well cosine separates matches from non-matches.
- ``recall@1``, ``recall@5``, ``mrr@10``, ``ndcg@10``: each anchor retrieves among the distinct second
  texts of the split; its relevant ones are its positives (scored pairs: the pairs scored at least half
  way up the split's score range).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .ranking import ranking_metrics


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    from scipy.stats import spearmanr

    if len(x) < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return 0.0  # undefined: no order to agree with
    return float(spearmanr(x, y).statistic)


def _separation(a: np.ndarray, b: np.ndarray, outputs: dict[str, list]) -> float:
    """Spearman of cosine against match/no-match over positives and (hard or shifted) negatives."""
    if "emb3" in outputs:
        neg = np.asarray(outputs["emb3"], dtype=np.float32)
        keep = np.ones(len(a), dtype=bool)
    else:
        keys = outputs["key2"]
        shift = np.roll(np.arange(len(b)), -1)
        neg = b[shift]
        keep = np.array([keys[i] != keys[j] for i, j in enumerate(shift)], dtype=bool)
    pos_cos = (a * b).sum(1)
    neg_cos = (a[keep] * neg[keep]).sum(1)
    cos = np.concatenate([pos_cos, neg_cos])
    gold = np.concatenate([np.ones(len(pos_cos)), np.zeros(len(neg_cos))])
    return _spearman(cos, gold)


def _retrieval(a: np.ndarray, b: np.ndarray, key1: list[str], key2: list[str], match: np.ndarray) -> dict:
    """Each distinct matching anchor ranks every distinct second text of the split."""
    docs: dict[str, int] = {}
    for i, k in enumerate(key2):
        docs.setdefault(k, i)
    doc_index = {k: n for n, k in enumerate(docs)}
    queries: dict[str, int] = {}
    relevant: dict[str, set[int]] = {}
    for i, k in enumerate(key1):
        if match[i]:
            queries.setdefault(k, i)
            relevant.setdefault(k, set()).add(doc_index[key2[i]])
    if not queries:
        return ranking_metrics(np.zeros((0, len(docs))), [], ks=(1, 5))
    q = a[list(queries.values())]
    d = b[list(docs.values())]
    return ranking_metrics(q @ d.T, [relevant[k] for k in queries], ks=(1, 5))


def embedding_metrics(outputs: dict[str, list]) -> dict[str, Any]:
    """Spearman and retrieval metrics from ``emb1``/``emb2`` (and ``emb3``, ``score``, ``key1``/``key2``)."""
    a = np.asarray(outputs.get("emb1", []), dtype=np.float32)
    b = np.asarray(outputs.get("emb2", []), dtype=np.float32)
    if len(a) == 0:
        return {"spearman": 0.0, "recall@1": 0.0, "recall@5": 0.0, "mrr@10": 0.0, "ndcg@10": 0.0, "examples": 0}
    result: dict[str, Any] = {}
    if "score" in outputs:
        scores = np.asarray(outputs["score"], dtype=np.float64)
        cos = (a * b).sum(1)
        result["spearman"] = _spearman(cos, scores)
        result["pearson"] = float(np.corrcoef(cos, scores)[0, 1]) if len(a) > 1 and np.ptp(scores) else 0.0
        match = scores >= (scores.min() + scores.max()) / 2 if np.ptp(scores) else np.ones(len(a), dtype=bool)
    else:
        result["spearman"] = _separation(a, b, outputs)
        match = np.ones(len(a), dtype=bool)
    result |= _retrieval(a, b, outputs["key1"], outputs["key2"], match)
    result["examples"] = len(a)
    return result
