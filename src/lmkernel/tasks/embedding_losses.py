"""The embedding task's losses, on unit vectors, as sentence-transformers defines them.

- In-batch negatives (``MultipleNegativesRankingLoss``): each anchor must pick its own positive out of
  every positive (and hard negative) of the batch; cross-entropy over cosine × scale.
- CoSENT (``CoSENTLoss``): for scored pairs, every pair (i, j) with score_i > score_j whose cosines are
  in the wrong order costs log(1 + Σ exp(scale · (cos_j − cos_i))); only the order of the scores matters.
"""

from __future__ import annotations

from typing import Any


def sentence_vectors(model: Any, input_ids: Any, attention_mask: Any) -> Any:
    """Mean-pooled, L2-normalised sentence vectors [B, H] in float32 (the embedder seam's pooling)."""
    import torch.nn.functional as F

    from ..knowledge.embedder import mean_pool

    hidden = model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
    return F.normalize(mean_pool(hidden.float(), attention_mask), dim=-1)


def mnrl_loss(anchors: Any, positives: Any, negatives: Any = None, scale: float = 20.0) -> Any:
    """In-batch negatives: anchor i's target is positive i among [positives; negatives]."""
    import torch
    import torch.nn.functional as F

    candidates = positives if negatives is None else torch.cat([positives, negatives])
    logits = scale * anchors @ candidates.T
    return F.cross_entropy(logits, torch.arange(len(anchors), device=anchors.device))


def cosent_loss(left: Any, right: Any, scores: Any, scale: float = 20.0) -> Any:
    """CoSENT over the batch's pairs: log(1 + Σ_{s_i < s_j} exp(scale · (cos_i − cos_j)))."""
    import torch

    cos = (left * right).sum(-1) * scale
    diff = cos[:, None] - cos[None, :]
    wrong_order_possible = scores[:, None] < scores[None, :]
    diff = diff.masked_fill(~wrong_order_possible, float("-inf"))
    return torch.logsumexp(torch.cat([diff.new_zeros(1), diff.flatten()]), dim=0)
