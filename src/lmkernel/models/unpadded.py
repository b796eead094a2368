"""Classify a batch of texts as one unpadded sequence: no padding token ever reaches a GEMM.

A server's batch holds whatever requests are in flight, of any lengths. Padding them to a common
width wastes the padded rows in every linear layer; cutting the batch into length groups
(``serve.batcher.plan_groups``) wastes less but runs several smaller GEMMs, which this CPU runs
further below its peak. Here the texts of a batch are concatenated into one sequence of
``sum(lengths)`` tokens with per-text position ids, so each linear layer runs one GEMM over real
tokens only; only attention needs to know where a text ends, and our registered attention
function attends within each text's span of the packed sequence.
The logits equal the padded forward's up to float rounding (``tests/serve/test_unpadded.py``).

Needs a BERT-family classifier whose encoder takes its attention from transformers' registry
(``_supports_attention_backend``) and uses absolute positions; anything else keeps the padded
path (``supports_unpadded``).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import torch

from .attention import attention_function

UNPADDED = "lmk_unpadded"


def _segment_attention(module, query, key, value, attention_mask, dropout: float = 0.0, scaling=None,
                       lmk_segments: Sequence[tuple[int, int]] = (), **_):
    """Bidirectional attention within each text of a packed (1, heads, tokens, d) sequence.

    ``lmk_segments`` holds each text's (start, end) in the packed tokens. One small softmax(q kᵀ) v
    per text, on strided views of the projections. The earlier form gathered every text into a padded
    (texts, longest) block for one masked SDPA call: several times the real (query, key) pairs, and the
    CPU flash kernel is slow at head size 32, so on server batches the whole model runs faster this way
    (bench/experiments/unpadded.py, which keeps the earlier form as a variant)."""
    import torch.nn.functional as F

    scale = scaling if scaling is not None else query.shape[-1] ** -0.5
    dtype = query.dtype
    # bf16 serving: the per-text products are small, and CPU bf16 bmm/softmax on them are slower than fp32,
    # with autocast copying every slice: one cast of q, k, v per layer, attention in fp32, one cast back
    with torch.autocast(query.device.type, enabled=False):
        q, k, v = (query[0] * scale).float(), key[0].float(), value[0].float()  # (heads, tokens, d)
        outs = []
        for start, end in lmk_segments:
            probs = torch.bmm(q[:, start:end], k[:, start:end].transpose(1, 2)).softmax(-1)
            if dropout:
                probs = F.dropout(probs, dropout)
            outs.append(torch.bmm(probs, v[:, start:end]))
        out = torch.cat(outs, 1).transpose(0, 1)[None]  # (1, tokens, heads, d), in packed order
    return out.to(dtype), None


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


def _last_layer_at_cls(layer: Any, hidden: torch.Tensor, starts: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """A BertLayer's output at each text's [CLS] token only, (texts, hidden), from the packed (1, tokens,
    hidden) input. The classifier reads nothing else of the last layer, so only the keys and values
    need every token: the queries, attention, output projection and feed-forward run on one row per
    text. That skips 10 of the layer's 12 d^2 multiply-adds per token, ~14 % of MiniLM's linear work
    (bench/experiments/unpadded.py). The [CLS] queries attend to every packed token in one product,
    masked to their own text: at one query per text that costs less than a loop over the texts."""
    attn = layer.attention.self
    h, heads, size = hidden[0], attn.num_attention_heads, attn.attention_head_size
    cls = h[starts]  # (texts, hidden)
    q = attn.query(cls).view(len(starts), heads, size).transpose(0, 1) * attn.scaling  # (heads, texts, d)
    k = attn.key(h).view(h.shape[0], heads, size).permute(1, 2, 0)  # (heads, d, tokens)
    v = attn.value(h).view(h.shape[0], heads, size).transpose(0, 1)  # (heads, tokens, d)
    text_of = torch.repeat_interleave(torch.arange(len(starts), device=h.device), lengths)  # (tokens,)
    outside = text_of[None, :] != torch.arange(len(starts), device=h.device)[:, None]  # (texts, tokens)
    probs = torch.bmm(q, k).masked_fill_(outside, float("-inf")).softmax(-1)
    context = torch.bmm(probs, v).transpose(0, 1).reshape(len(starts), heads * size)  # (texts, hidden)
    return layer.feed_forward_chunk(layer.attention.output(context, cls))


def classify_unpadded(model: Any, items: Sequence[Sequence[int]]) -> torch.Tensor:
    """Logits (texts, labels) for token-id lists of any lengths, in one forward without padding.
    Call under ``torch.inference_mode`` (or ``no_grad``); the model must be in eval mode.

    BertModel's forward is unrolled here (embeddings, the encoder's layers, the pooler) so that the
    last layer runs at the [CLS] tokens only (``_last_layer_at_cls``); the layers before it are the
    model's own modules, called as its encoder calls them."""
    device = next(model.parameters()).device
    lengths = [len(ids) for ids in items]
    ends = list(itertools.accumulate(lengths))
    starts = [end - n for end, n in zip(ends, lengths)]
    packed = torch.tensor([t for ids in items for t in ids])[None].to(device)
    positions = torch.cat([torch.arange(n) for n in lengths])[None].to(device)
    bert, segments = model.bert, list(zip(starts, ends))
    hidden = bert.embeddings(input_ids=packed, position_ids=positions, token_type_ids=torch.zeros_like(packed))
    *layers, last = bert.encoder.layer
    with attention_function(model.config, UNPADDED, _segment_attention):
        for layer in layers:
            hidden = layer(hidden, None, None, position_ids=positions, lmk_segments=segments)
    first = _last_layer_at_cls(last, hidden, torch.tensor(starts, device=device),
                               torch.tensor(lengths, device=device))  # each text's [CLS] state, (texts, hidden)
    pooled = bert.pooler(first[:, None])
    return model.classifier(model.dropout(pooled))
