"""Masked-LM loss with the vocabulary head run only where a token is masked.

Why: a masked LM predicts about 15 % of the tokens, yet ``BertForMaskedLM`` projects every position
onto the whole vocabulary; for a small encoder with a large vocabulary (MiniLM after vocabulary
extension: 35k pieces, 384 wide) that projection is about half of each step's work. Gathering the
masked positions first gives the same loss and gradients for a fraction of the head's cost.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers.modeling_outputs import MaskedLMOutput

# the attribute holding the MLM head, per architecture family (the encoder is model.base_model)
_HEADS = ("cls", "lm_head", "predictions", "generator_lm_head")


def mlm_head(model: Any) -> Any | None:
    """The module mapping hidden states to vocabulary logits, or None where this shortcut does not apply
    (a wrapped model such as PEFT or DDP, or an architecture we do not know)."""
    if type(model).__name__.endswith("ForMaskedLM") and getattr(model, "base_model", None) is not model:
        for name in _HEADS:
            head = getattr(model, name, None)
            if isinstance(head, torch.nn.Module):
                return head
    return None


def masked_only_forward(model: Any, batch: dict) -> Any:
    """``model(**batch)``'s loss, computing logits only at positions whose label is not -100.

    The model's own forward runs (so mixed precision and wrappers apply as usual) with a pre-hook on its
    head that keeps the masked rows of the hidden states. Returns a ``MaskedLMOutput`` with ``loss`` and
    the logits of the masked positions only, flattened to (n_masked, vocab); falls back to the full
    forward where ``mlm_head`` finds no head."""
    head = mlm_head(model)
    labels = batch.get("labels")
    if head is None or labels is None:
        return model(**batch)
    keep = labels != -100

    def gather(_module: Any, args: tuple) -> tuple:
        return (args[0][keep], *args[1:])

    handle = head.register_forward_pre_hook(gather)
    try:
        out = model(**{k: v for k, v in batch.items() if k != "labels"})
    finally:
        handle.remove()
    logits = out.logits
    loss = torch.nn.functional.cross_entropy(logits.float(), labels[keep]) if logits.numel() \
        else logits.sum() * 0.0
    return MaskedLMOutput(loss=loss, logits=logits)
