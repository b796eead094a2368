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
"""

from __future__ import annotations

from typing import Any

import torch

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
    cache = head.past_key_values
    cache.batch_repeat_interleave(ids.shape[0])
    rest = {k: v for k, v in batch.items() if k not in ("input_ids", "labels", "logits_to_keep")}
    return model(input_ids=ids[:, prefix:], past_key_values=cache, use_cache=True,
                 logits_to_keep=batch["logits_to_keep"][:, prefix:], labels=batch["labels"][:, prefix:], **rest)
