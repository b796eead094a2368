"""Freeze the backbone: only the task head (and optionally the top k layers) trains."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from ..errors import LmkError
from .base import LAYER_RE, Context, head_names
from .base import Options as _Base

NAME = "freeze"
DEFAULT_LR = 1e-3
TASKS = ("classification", "ner", "qa")
NOT_FOR = "a causal LM's output layer is its (tied) input embedding, so a frozen backbone leaves nothing to train"
SUMMARY = "the backbone stays frozen; the head (and the top k layers) train: fastest, least accurate"


class Options(_Base):
    train_top_layers: int = Field(0, ge=0, description="Also train the top k encoder layers (0 = head only).")


def apply(model: Any, opts: Options, ctx: Context) -> Any:
    names = [n for n, _ in model.named_parameters()]
    layers = sorted({int(m.group(1)) for n in names if (m := LAYER_RE.search("." + n))})
    k = opts.train_top_layers
    if k > len(layers):
        raise LmkError(f"tuning.freeze.train_top_layers={k} but the model has {len(layers)} layers",
                       where="tuning.freeze.train_top_layers", fix=f"use a value between 0 and {len(layers)}")
    top = set(layers[len(layers) - k:]) if k else set()
    heads = tuple(h + "." for h in head_names(model))
    for name, p in model.named_parameters():
        m = LAYER_RE.search("." + name)
        p.requires_grad_(name.startswith(heads) or ".pooler." in "." + name or bool(m and int(m.group(1)) in top))
    return model
