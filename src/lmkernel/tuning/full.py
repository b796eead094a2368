"""Full fine-tuning: every weight trains (optionally not the input embeddings)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from .base import ALL_TASKS, Context
from .base import Options as _Base

NAME = "full"
DEFAULT_LR = 1e-4  # not BERT's classic 5e-5: small encoders such as MiniLM learn too slowly at it in a few epochs
TASKS = ALL_TASKS + ("pretrain",)  # pretraining trains every weight
SUMMARY = "every weight trains; the most accurate, the largest artifact"


class Options(_Base):
    train_embeddings: bool = Field(
        True, description="Also train the input word-embedding matrix. false freezes it: in a small encoder it is "
        "half the parameters, and its optimizer and gradient passes are a noticeable share of each CPU step (only "
        "for a pretrained model: a randomly initialised one needs its embeddings to learn).")


def apply(model: Any, opts: Options, ctx: Context) -> Any:
    for p in model.parameters():
        p.requires_grad_(True)
    embeddings = model.get_input_embeddings()
    lm_head = model.get_output_embeddings() is not None  # language models (often tied to it) keep it training
    if not opts.train_embeddings and embeddings is not None and not lm_head:
        embeddings.weight.requires_grad_(False)
    return model
