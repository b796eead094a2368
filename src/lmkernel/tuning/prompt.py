"""Prompt tuning (peft): learned virtual-token embeddings put before every input.

Only the virtual tokens (and the task head) train. The model's forward changes (inputs grow by the
virtual tokens), so the artifact keeps the peft model instead of merging.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

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

NAME = "prompt"
DEFAULT_LR = 1e-2  # only a few embeddings train: they need a large rate to move
MERGEABLE = False
SUMMARY = "learned virtual-token embeddings before the input; no merge (the forward changes)"
TASKS = ("classification",) + CAUSAL_TASKS
NOT_FOR = ("the virtual tokens shift every token's position, and NER tags and QA answer spans are aligned to "
           "token positions "
           "(use prefix tuning, which adds keys/values only)")


class Options(_Base):
    num_virtual_tokens: int = Field(20, gt=0, le=512, description="Virtual tokens learned before the input.")
    init: Literal["random", "text"] = Field("random", description="random, or text: start from the embeddings "
                                            "of init_text's tokens.")
    init_text: str | None = Field(None, description="init: text: the words whose embeddings start the prompt "
                                  "(e.g. 'Classify the sentiment of this review:').")

    @model_validator(mode="after")
    def _text_given(self) -> Options:
        if self.init == "text" and not self.init_text:
            raise ValueError("init is text but init_text is empty (set init_text, or init: random)")
        return self


def apply(model: Any, opts: Options, ctx: Context) -> Any:
    from peft import PromptTuningConfig

    from .base import wrap_peft

    extra: dict[str, Any] = {}
    if opts.init == "text":
        extra = {"prompt_tuning_init": "TEXT", "prompt_tuning_init_text": opts.init_text,
                 "tokenizer_name_or_path": model.config._name_or_path}
    config = PromptTuningConfig(num_virtual_tokens=opts.num_virtual_tokens, task_type=peft_task_type(model),
                                modules_to_save=modules_to_save(model), **extra)
    return wrap_peft(model, config)


HOOKS = Hooks(save=peft_saver_without_merge("it adds virtual tokens to the input"), load=peft_loader(mergeable=False))
