"""Library chatter our users cannot act on, silenced where we call the library.

transformers prints a load report for every head it initialises (the point of fine-tuning) and
progress bars for one-file saves; peft touches deprecated transformers properties and warns about
AdaLoRA's own rank pattern on reload and its rank-0 modules on save. The CLI sets transformers'
verbosity too, but code that imports lmkernel in Python gets the same quiet output this way.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator

# (category, message regex): warnings libraries raise about their own internals
LIBRARY_WARNINGS = (
    (FutureWarning, r"`is_gradient_checkpointing` is deprecated"),
    (FutureWarning, r"`past_key_values` is deprecated"),  # peft's prefix tuning passes the old name
    (RuntimeWarning, r"The following rank_pattern keys did not match"),
    (UserWarning, r".*LoRA tensor\(s\) have invalid shape"),  # AdaLoRA pruned a module to rank 0, not a shard
)


@contextlib.contextmanager
def known_warnings_ignored() -> Iterator[None]:
    """The library warnings above ignored inside (training and evaluation forwards of peft models)."""
    with warnings.catch_warnings():
        for category, message in LIBRARY_WARNINGS:
            warnings.filterwarnings("ignore", message=message, category=category)
        yield


@contextlib.contextmanager
def quiet_libraries() -> Iterator[None]:
    """transformers at error level with no progress bars, and the known library warnings ignored, inside."""
    from transformers.utils import logging as hf_logging

    level, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity(max(level, hf_logging.ERROR))
    hf_logging.disable_progress_bar()
    try:
        with known_warnings_ignored():
            yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()
