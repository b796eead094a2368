"""Optimizer parameter groups: the default every method starts from."""

from __future__ import annotations

from typing import Any


def default_groups(model: Any, weight_decay: float, skip: list[Any] = ()) -> list[dict[str, Any]]:
    """AdamW groups: decay on matrices, none on biases and norms; parameters in ``skip`` are left for the
    caller's own group (by identity). Empty groups are dropped."""
    skipped = {id(p) for p in skip}
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad or id(p) in skipped:
            continue
        (no_decay if p.ndim < 2 or "LayerNorm" in name or "norm" in name.lower() else decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]
