"""Run the tokens every row of a chat batch starts with once, not once per row.

Instruction and translation data repeat a system turn and the opening of the user turn in every
example (14 of the ~63 tokens of a Multi30k pair with SmolLM2's template). A causal model's states
at those positions do not depend on what follows, so the batch's common prefix is run as a batch
of one that keeps its key/value cache, the cache is repeated to the batch size, and only the rows'
differing suffixes run on top of it. The loss and every gradient are those of the plain forward
(up to float rounding: the prefix's gradient arrives as one sum instead of per-row pieces).

Only the positions whose logits are learnt need to be in the suffix, so the prefix stops at the
first such position; it needs the boolean ``logits_to_keep``/``shift_labels`` batch that
``ChatTask.collate`` builds.

Two forms. ``forward_with_shared_prefix`` is two model calls (prefix with a KV cache, then the
suffixes) and works for any full-attention causal LM. ``forward_packed`` is one call on the
sequence ``prefix + row 1 + row 2 + ...`` with per-segment position ids and an attention function
of ours that knows the layout, so every linear layer runs one GEMM over all tokens: the two-call
form's few-row prefix GEMMs run far below the CPU's peak (``bench/experiments/shared_prefix.py``
compares the forms). The packed form needs a model that takes its attention function from
transformers' registry (``_supports_attention_backend``).
"""

from __future__ import annotations

from typing import Any

import torch

from ..models.attention import attention_function
from ..models.cachearg import cache_of, with_cache

MIN_PREFIX = 4  # below this the second forward call costs more than it saves


def supports_shared_prefix(model: Any) -> bool:
    """Full-attention decoders only: a sliding-window cache drops old keys between the two calls."""
    config = getattr(model, "config", None)
    if config is None:
        return False
    if getattr(config, "sliding_window", None) and getattr(config, "use_sliding_window", True):
        return False
    layer_types = getattr(config, "layer_types", None) or ["full_attention"]
    return all(t == "full_attention" for t in layer_types)


def shared_prefix_length(batch: dict[str, torch.Tensor]) -> int:
    """How many leading tokens every row shares, stopping at the first position whose logits are
    kept; 0 when splitting would not pay."""
    keep = batch.get("logits_to_keep")
    ids = batch["input_ids"]
    if not isinstance(keep, torch.Tensor) or keep.dtype != torch.bool or ids.shape[0] < 2:
        return 0
    same = (ids == ids[:1]).all(0) & (batch["attention_mask"] == 1).all(0)
    differs = (~same).nonzero()
    common = int(differs[0]) if len(differs) else ids.shape[1]
    kept = keep.any(0).nonzero()
    first_kept = int(kept[0]) if len(kept) else ids.shape[1]
    p = min(common, first_kept, ids.shape[1] - 1)
    return p if p >= MIN_PREFIX else 0


def forward_with_shared_prefix(model: Any, batch: dict[str, torch.Tensor], prefix: int) -> Any:
    """The model's output (loss and kept logits) for ``batch``, its first ``prefix`` columns run once."""
    ids, mask = batch["input_ids"], batch["attention_mask"]
    head = model(input_ids=ids[:1, :prefix], attention_mask=mask[:1, :prefix], use_cache=True, logits_to_keep=1)
    cache = cache_of(head)
    cache.batch_repeat_interleave(ids.shape[0])
    rest = {k: v for k, v in batch.items() if k not in ("input_ids", "labels", "logits_to_keep")}
    return model(input_ids=ids[:, prefix:], **with_cache(cache), use_cache=True,
                 logits_to_keep=batch["logits_to_keep"][:, prefix:], labels=batch["labels"][:, prefix:], **rest)


# -- one-call form: prefix and suffix rows share every GEMM; only attention knows the layout -----
PACKED = "lmk_shared_prefix"


def _packed_attention(module, query, key, value, attention_mask, dropout: float = 0.0, scaling=None,
                      lmk_layout: tuple | None = None, **_):
    """Attention for a packed (1, prefix + rows * width) sequence: the prefix attends causally to
    itself, each row's suffix to the whole prefix and causally to its own tokens. ``lmk_layout``
    (prefix, rows, width, key mask) comes down from the model call as an attention kwarg."""
    import torch.nn.functional as F

    p, rows, width, key_ok = lmk_layout
    gqa = query.shape[1] != key.shape[1]
    head = F.scaled_dot_product_attention(query[:, :, :p], key[:, :, :p], value[:, :, :p], is_causal=True,
                                          dropout_p=dropout, scale=scaling, enable_gqa=gqa)

    def rows_of(x):  # (1, heads, rows * width, d) -> (rows, heads, width, d)
        return x[:, :, p:].reshape(x.shape[1], rows, width, x.shape[-1]).transpose(0, 1)

    def with_prefix(x):
        return torch.cat([x[:, :, :p].expand(rows, -1, -1, -1), rows_of(x)], dim=2)

    causal = torch.ones(width, width, dtype=torch.bool, device=query.device).tril()
    mask = torch.cat([torch.ones(rows, width, p, dtype=torch.bool, device=query.device),
                      causal & key_ok[:, None, :]], dim=2)[:, None]  # (rows, 1, width, prefix + width)
    tail = F.scaled_dot_product_attention(rows_of(query), with_prefix(key), with_prefix(value), attn_mask=mask,
                                          dropout_p=dropout, scale=scaling, enable_gqa=gqa)
    out = torch.cat([head, tail.transpose(0, 1).reshape(1, query.shape[1], rows * width, -1)], dim=2)
    return out.transpose(1, 2).contiguous(), None


def packs_attention(model: Any) -> bool:
    """Whether the model takes its attention function from transformers' registry (Llama, Qwen2,
    Mistral, ... do; the one-call form needs that), else the two-call form is used."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return bool(getattr(base, "_supports_attention_backend", False))


def forward_packed(model: Any, batch: dict[str, torch.Tensor], prefix: int) -> Any:
    """Like ``forward_with_shared_prefix`` in one call: the prefix and the rows' suffixes are one
    sequence, so each linear layer runs one GEMM instead of a small one for the prefix and another."""
    ids, mask = batch["input_ids"], batch["attention_mask"]
    rows, width = ids.shape[0], ids.shape[1] - prefix
    packed = torch.cat([ids[0, :prefix], ids[:, prefix:].reshape(-1)])[None]
    positions = torch.cat([torch.arange(prefix), torch.arange(prefix, prefix + width).repeat(rows)])[None]
    keep = torch.cat([torch.zeros(prefix, dtype=torch.bool), batch["logits_to_keep"][:, prefix:].reshape(-1)])[None]
    with attention_function(model.config, PACKED, _packed_attention):
        return model(input_ids=packed.to(ids.device), position_ids=positions.to(ids.device), use_cache=False,
                     logits_to_keep=keep.to(ids.device), labels=packed.to(ids.device),  # labels: only "want a loss"
                     shift_labels=batch["shift_labels"], lmk_layout=(prefix, rows, width, mask[:, prefix:].bool()))
