"""IA3 (peft): learned vectors that rescale keys, values and the feed-forward activations.

Far fewer trainable parameters than LoRA (one vector per adapted module); merges into the base weights.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from .base import Context, Hooks, check_targets, modules_to_save, peft_loader, peft_save, peft_task_type
from .base import Options as _Base

NAME = "ia3"
DEFAULT_LR = 5e-3  # a vector per module moves slowly: well above LoRA's rate
SUMMARY = "learned scaling vectors on keys, values and the MLP (the fewest trainable parameters); merges"


class Options(_Base):
    target_modules: list[str] | None = Field(
        None, description="Modules whose activations are rescaled; default: peft's for the architecture "
        "(keys, values and the feed-forward output).")
    feedforward_modules: list[str] | None = Field(
        None, description="Which of target_modules are feed-forward layers (their input is rescaled, not "
        "their output); default: peft's for the architecture.")


def apply(model: Any, opts: Options, ctx: Context) -> Any:
    from peft import IA3Config

    from .base import wrap_peft

    for field, names in (("target_modules", opts.target_modules), ("feedforward_modules", opts.feedforward_modules)):
        if names is not None:
            check_targets(model, names, f"tuning.ia3.{field}")
    if opts.feedforward_modules is not None and not set(opts.feedforward_modules) <= set(opts.target_modules or []):
        from ..errors import LmkError

        raise LmkError("tuning.ia3.feedforward_modules must be a subset of tuning.ia3.target_modules",
                       where="tuning.ia3", fix="list the feed-forward modules in target_modules too")
    config = IA3Config(target_modules=opts.target_modules, feedforward_modules=opts.feedforward_modules,
                       task_type=peft_task_type(model), modules_to_save=modules_to_save(model))
    return wrap_peft(model, config)


HOOKS = Hooks(save=peft_save, load=peft_loader(mergeable=True))
