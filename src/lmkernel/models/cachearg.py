"""The KV-cache argument under the name the installed transformers uses.

transformers renamed ``past_key_values`` (argument and output field) to ``cache`` and warns on every
call that uses the old name; older releases know only the old one. Callers pass ``**with_cache(c)``
and read ``cache_of(out)``, so either release runs without the warning.
"""

from __future__ import annotations

import functools
from typing import Any


@functools.cache
def cache_name() -> str:
    from dataclasses import fields

    from transformers.modeling_outputs import CausalLMOutputWithPast

    return "cache" if any(f.name == "cache" for f in fields(CausalLMOutputWithPast)) else "past_key_values"


def with_cache(cache: Any) -> dict[str, Any]:
    """Keyword arguments that hand ``cache`` (a transformers ``Cache``) to a model's forward or generate."""
    return {cache_name(): cache}


def cache_of(output: Any) -> Any:
    """The ``Cache`` a forward with ``use_cache=True`` returned."""
    return getattr(output, cache_name())
