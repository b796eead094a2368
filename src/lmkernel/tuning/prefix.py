"""Prefix tuning / P-tuning v2 (peft): learned keys and values put before every layer's attention.

Only the prefixes (and the task head) train. The model's forward changes, so the artifact keeps the
peft model instead of merging.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from .base import (
    CAUSAL_TASKS,
    Context,
    Hooks,
    modules_to_save,
    peft_loader,
    peft_saver_without_merge,
    peft_task_type,
)
from .base import Options as _Base

NAME = "prefix"
DEFAULT_LR = 1e-2  # as prompt tuning: few parameters, a large rate
MERGEABLE = False
SUMMARY = "learned keys/values before every layer's attention (P-tuning v2); no merge"
TASKS = CAUSAL_TASKS
NOT_FOR = ("peft's prefix tuning feeds the prefixes as past keys/values, which transformers 5 encoders (BERT "
           "family) no longer accept; use prompt, lora or adapter for encoder tasks")


class Options(_Base):
    num_virtual_tokens: int = Field(20, gt=0, le=512, description="Prefix length (keys/values per layer).")
    projection: bool = Field(False, description="Reparametrize the prefixes through a two-layer MLP (more "
                             "parameters while training, steadier for large models).")
    projection_hidden: int | None = Field(None, gt=0, description="projection: the MLP's hidden size "
                                          "(default: the model's hidden size).")


def apply(model: Any, opts: Options, ctx: Context) -> Any:
    from peft import PrefixTuningConfig

    from .base import wrap_peft

    hidden = opts.projection_hidden or model.config.hidden_size
    config = PrefixTuningConfig(num_virtual_tokens=opts.num_virtual_tokens, prefix_projection=opts.projection,
                                encoder_hidden_size=hidden, task_type=peft_task_type(model),
                                modules_to_save=modules_to_save(model))
    return wrap_peft(model, config)


HOOKS = Hooks(save=peft_saver_without_merge("it adds keys and values to every attention"),
              load=peft_loader(mergeable=False))
