"""Classify a batch of texts as one unpadded sequence: no padding token ever reaches a GEMM.

A server's batch holds whatever requests are in flight, of any lengths. Padding them to a common
width wastes the padded rows in every linear layer; cutting the batch into length groups
(``serve.batcher.plan_groups``) wastes less but runs several smaller GEMMs, which this CPU runs
further below its peak. Here the texts of a batch are concatenated into one sequence of
``sum(lengths)`` tokens with per-text position ids, so each linear layer runs one GEMM over real
tokens only; only attention needs to know where a text ends, and our registered attention
function gathers each text's tokens into a (texts, longest) block for one masked SDPA call.
The logits equal the padded forward's up to float rounding (``tests/serve/test_unpadded.py``).

Needs a BERT-family classifier whose encoder takes its attention from transformers' registry
(``_supports_attention_backend``) and uses absolute positions; anything else keeps the padded
path (``supports_unpadded``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from .attention import attention_function

UNPADDED = "lmk_unpadded"


def _segment_attention(module, query, key, value, attention_mask, dropout: float = 0.0, scaling=None,
                       lmk_segments: tuple | None = None, **_):
    """Bidirectional attention within each text of a packed (1, heads, tokens, d) sequence.
    ``lmk_segments`` = (flat index of each (text, offset) into the tokens, valid (texts, longest) bool,
    flat positions of the valid (text, offset) pairs)."""
    import torch.nn.functional as F

    index, valid, rows = lmk_segments
    texts, longest = valid.shape

    def blocks(x):  # (1, heads, tokens, d) -> (texts, heads, longest, d); row gathers, not fancy indexing
        tokens = x[0].transpose(0, 1).reshape(x.shape[2], -1)  # a view: the projections are (tokens, heads, d)
        return tokens.index_select(0, index).view(texts, longest, x.shape[1], -1).transpose(1, 2)

    out = F.scaled_dot_product_attention(blocks(query), blocks(key), blocks(value),
                                         attn_mask=valid[:, None, None, :], dropout_p=dropout, scale=scaling)
    out = out.transpose(1, 2).reshape(texts * longest, query.shape[1], -1)
    return out.index_select(0, rows)[None], None  # the valid rows, in text order = the packed order


def supports_unpadded(model: Any) -> bool:
    """BERT sequence classifiers (BERT, MiniLM) with registry attention and absolute positions; not
    other heads on a BERT encoder (multiple choice pools differently)."""
    from transformers import BertForSequenceClassification

    if not isinstance(model, BertForSequenceClassification) or model.bert.pooler is None:
        return False
    config = model.config
    return (bool(getattr(model.bert, "_supports_attention_backend", False))
            and getattr(config, "position_embedding_type", "absolute") == "absolute"
            and not getattr(config, "is_decoder", False))


def classify_unpadded(model: Any, items: Sequence[Sequence[int]]) -> torch.Tensor:
    """Logits (texts, labels) for token-id lists of any lengths, in one forward without padding.
    Call under ``torch.inference_mode`` (or ``no_grad``); the model must be in eval mode."""
    device = next(model.parameters()).device
    lengths = torch.tensor([len(ids) for ids in items])
    longest = int(lengths.max())
    starts = torch.cumsum(lengths, 0) - lengths
    offsets = torch.arange(longest)
    valid = offsets[None, :] < lengths[:, None]
    index = torch.where(valid, starts[:, None] + offsets[None, :], 0)
    packed = torch.tensor([t for ids in items for t in ids])[None]
    positions = torch.cat([torch.arange(n) for n in lengths.tolist()])[None]
    with attention_function(model.config, UNPADDED, _segment_attention):
        hidden = model.bert(input_ids=packed.to(device), position_ids=positions.to(device),
                            token_type_ids=torch.zeros_like(packed, device=device),
                            lmk_segments=(index.flatten().to(device), valid.to(device),
                                          valid.flatten().nonzero().squeeze(1).to(device))).last_hidden_state
    first = hidden[0, starts.to(device)]  # each text's [CLS] state, (texts, hidden)
    pooled = model.bert.pooler(first[:, None])
    return model.classifier(model.dropout(pooled))
