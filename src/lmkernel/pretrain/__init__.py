"""Pretraining stage: corpus streaming and packing, tokenizer training, model presets, MLM masking.

``pretrain(spec)`` is the entry point (``lmkernel pretrain SPEC``); it runs on the training spine
(``training.train``) with a streaming batch source instead of a list of features.
"""

from .pipeline import pretrain

__all__ = ["pretrain"]
