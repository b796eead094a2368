"""The embedding losses and metrics against hand computations on 3-row cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lmkernel.evaluation.embedding_metrics import embedding_metrics
from lmkernel.evaluation.ranking import ranking_metrics

R = 1 / math.sqrt(2)


def _t(rows):
    import torch

    return torch.tensor(rows, dtype=torch.float32)


def test_mnrl_is_cross_entropy_over_in_batch_positives():
    from lmkernel.tasks.embedding_losses import mnrl_loss

    anchors = _t([[1, 0, 0], [0, 1, 0], [0, 0, 1]])
    positives = _t([[1, 0, 0], [R, R, 0], [0, 0, 1]])
    # rows of anchors @ positives.T: [1, R, 0], [0, R, 0], [0, 0, 1]; target: the diagonal
    want = (-math.log(math.e / (math.e + math.exp(R) + 1))
            - math.log(math.exp(R) / (1 + math.exp(R) + 1))
            - math.log(math.e / (1 + 1 + math.e))) / 3
    assert float(mnrl_loss(anchors, positives, scale=1.0)) == pytest.approx(want, rel=1e-6)
    # scale multiplies the cosines before the softmax
    want20 = np.mean([-math.log(math.exp(20 * row[i]) / sum(math.exp(20 * x) for x in row))
                      for i, row in enumerate([[1, R, 0], [0, R, 0], [0, 0, 1]])])
    assert float(mnrl_loss(anchors, positives, scale=20.0)) == pytest.approx(want20, rel=1e-4)  # float32


def test_mnrl_hard_negatives_join_the_candidates():
    from lmkernel.tasks.embedding_losses import mnrl_loss

    anchors = _t([[1, 0], [0, 1]])
    positives = _t([[1, 0], [0, 1]])
    negatives = _t([[R, R], [1, 0]])
    # anchor 0 scores [1, 0 | R, 1]; anchor 1 scores [0, 1 | R, 0]
    want = (-math.log(math.e / (math.e + 1 + math.exp(R) + math.e))
            - math.log(math.e / (1 + math.e + math.exp(R) + 1))) / 2
    assert float(mnrl_loss(anchors, positives, negatives, scale=1.0)) == pytest.approx(want, rel=1e-6)


def test_cosent_penalises_pairs_in_the_wrong_order():
    from lmkernel.tasks.embedding_losses import cosent_loss

    left = _t([[1, 0], [1, 0], [1, 0]])
    right = _t([[1, 0], [R, R], [0, 1]])  # cosines 1, R, 0
    scores = _t([1.0, 2.0, 3.0])  # the gold order is the reverse of the cosines'
    want = math.log(1 + math.exp(1 - R) + math.exp(1 - 0) + math.exp(R - 0))
    assert float(cosent_loss(left, right, scores, scale=1.0)) == pytest.approx(want, rel=1e-6)
    right_order = _t([3.0, 2.0, 1.0])
    want = math.log(1 + math.exp(R - 1) + math.exp(0 - 1) + math.exp(0 - R))
    assert float(cosent_loss(left, right, right_order, scale=1.0)) == pytest.approx(want, rel=1e-6)
    ties = _t([2.0, 2.0, 2.0])  # no ordered pair: log(1) = 0
    assert float(cosent_loss(left, right, ties, scale=1.0)) == pytest.approx(0.0, abs=1e-7)


def test_ranking_metrics_by_hand():
    scores = np.array([[0.9, 0.1, 0.2, 0.3],   # relevant 0 ranks 1st
                       [0.5, 0.4, 0.3, 0.6],   # relevant 2 ranks 4th
                       [0.1, 0.8, 0.3, 0.2]])  # relevant 1 and 3 rank 1st and 3rd
    got = ranking_metrics(scores, [{0}, {2}, {1, 3}], ks=(1, 5))
    assert got["recall@1"] == pytest.approx((1 + 0 + 0.5) / 3)
    assert got["recall@5"] == pytest.approx(1.0)
    assert got["mrr@10"] == pytest.approx((1 + 0.25 + 1) / 3)
    ndcg2 = (1 + 1 / math.log2(4)) / (1 + 1 / math.log2(3))
    assert got["ndcg@10"] == pytest.approx((1 + 1 / math.log2(5) + ndcg2) / 3)


def test_ranking_skips_queries_without_relevant_documents():
    got = ranking_metrics(np.array([[1.0, 0.0], [0.0, 1.0]]), [set(), {1}], ks=(1,))
    assert got == {"recall@1": 1.0, "mrr@10": 1.0, "ndcg@10": 1.0}
    assert ranking_metrics(np.zeros((0, 2)), [], ks=(1,))["recall@1"] == 0.0


def _unit(rows):
    a = np.asarray(rows, dtype=np.float32)
    return (a / np.linalg.norm(a, axis=1, keepdims=True)).tolist()


def test_scored_pairs_spearman_and_mid_scale_matches():
    left = _unit([[1, 0], [1, 0], [1, 0], [1, 0]])
    right = _unit([[1, 0], [1, 0.5], [1, 2], [0, 1]])  # cosines fall from first to last
    out = {"emb1": left, "emb2": right, "score": [5.0, 4.0, 1.0, 0.0], "key1": list("abcd"), "key2": list("wxyz")}
    got = embedding_metrics(out)
    assert got["spearman"] == pytest.approx(1.0)
    assert got["examples"] == 4
    # scores >= 2.5 (half way up 0..5) are matches: anchors a and b; both anchors are the same vector, so
    # both rank w then x: a finds w first (hit), b finds x second
    assert got["recall@1"] == pytest.approx(0.5) and got["mrr@10"] == pytest.approx(0.75)
    out["score"] = [0.0, 1.0, 4.0, 5.0]
    assert embedding_metrics(out)["spearman"] == pytest.approx(-1.0)


def test_pairs_separate_positives_from_shifted_ones_and_dedupe_documents():
    vecs = _unit([[1, 0, 0], [0, 1, 0], [0, 0, 1]])
    out = {"emb1": vecs, "emb2": vecs, "key1": ["a", "b", "c"], "key2": ["x", "y", "z"]}
    got = embedding_metrics(out)
    assert got["spearman"] == pytest.approx(1.0)  # positives cos 1, shifted ones 0: a perfect split
    assert got["recall@1"] == got["mrr@10"] == got["ndcg@10"] == 1.0
    # the same positive twice is one document, relevant to both anchors
    out = {"emb1": vecs, "emb2": [vecs[0], vecs[0], vecs[2]], "key1": ["a", "b", "c"], "key2": ["x", "x", "z"]}
    got = embedding_metrics(out)
    assert got["recall@1"] == 1.0
