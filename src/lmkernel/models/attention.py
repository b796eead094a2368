"""Run one model call with an attention function of ours from transformers' registry.

The packed forms (``tasks/shared_prefix.py``, ``models/unpadded.py``) put several sequences into
one row, so every linear layer runs one GEMM; only attention must know where each sequence ends.
Models that take attention from the registry (``_supports_attention_backend``) look it up by
``config._attn_implementation`` on every call, so the function is registered once under its name
(with a mask function that builds nothing: ours builds its own) and the config is switched for the
call and restored even when the call fails. The layout reaches the function as an attention
kwarg, not a global.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any


@contextlib.contextmanager
def attention_function(config: Any, name: str, fn: Callable) -> Iterator[None]:
    """Inside the block, models with ``config`` call ``fn`` for attention (registered as ``name``)."""
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS

    if AttentionInterface._global_mapping.get(name) is not fn:  # first use, or another function under the name
        AttentionInterface.register(name, fn)
        ALL_MASK_ATTENTION_FUNCTIONS.register(name, lambda *a, **k: None)  # the attention builds its own
    saved = config._attn_implementation
    config._attn_implementation = name
    try:
        yield
    finally:
        config._attn_implementation = saved
