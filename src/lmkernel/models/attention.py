"""Run one model call with an attention function of ours from transformers' registry.

The packed forms (``tasks/shared_prefix.py``, ``models/unpadded.py``) put several sequences into
one row, so every linear layer runs one GEMM; only attention must know where each sequence ends.
Models that take attention from the registry (``_supports_attention_backend``) look it up by
``config._attn_implementation`` on every call, so the function is registered once under its name
(with a mask function that builds nothing: ours builds its own) and the config is switched for the
call and restored even when the call fails. The layout reaches the function as an attention
kwarg, not a global.

Serving runs one model from several worker threads at once (``serve/batcher.py``), so the switch
is counted per config: the first thread in switches it, the last one out restores it. Without
the count, a thread leaving would restore the model's own attention under another thread's
packed call, which would then run unmasked attention over all its texts.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

_lock = threading.Lock()
_active: dict[int, list] = {}  # id(config) -> [name, the config's own implementation, threads inside]


@contextlib.contextmanager
def attention_function(config: Any, name: str, fn: Callable) -> Iterator[None]:
    """Inside the block, models with ``config`` call ``fn`` for attention (registered as ``name``).

    Raises:
        RuntimeError: another thread is inside the block for the same config with another name.
    """
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS

    with _lock:
        if AttentionInterface._global_mapping.get(name) is not fn:  # first use, or another function under the name
            AttentionInterface.register(name, fn)
            ALL_MASK_ATTENTION_FUNCTIONS.register(name, lambda *a, **k: None)  # the attention builds its own
        entry = _active.get(id(config))
        if entry is None:
            _active[id(config)] = entry = [name, config._attn_implementation, 0]
            config._attn_implementation = name
        elif entry[0] != name:
            raise RuntimeError(f"attention {name!r} asked for while another thread runs {entry[0]!r} "
                               "on the same model")
        entry[2] += 1
    try:
        yield
    finally:
        with _lock:
            entry[2] -= 1
            if entry[2] == 0:
                config._attn_implementation = entry[1]
                del _active[id(config)]
