"""LoRA (peft), with DoRA, rsLoRA and LoRA+ as options.

Low-rank updates ``W + s B A`` on the attention and MLP linears. ``use_dora`` splits each weight into
magnitude and direction (DoRA), ``use_rslora`` scales by ``alpha / sqrt(r)`` so higher ranks keep
learning (rsLoRA), ``b_lr_ratio`` lets the B matrices learn faster (LoRA+). Merges into the base
weights for serving.
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import Field

from .base import (
    Context,
    Hooks,
    check_targets,
    is_bare_backbone,
    modules_to_save,
    peft_loader,
    peft_save,
    peft_task_type,
    present,
)
from .base import Options as _Base
from .groups import default_groups

NAME = "lora"
# ~20x full fine-tuning's rate: q+v LoRA at 5e-4 stayed at chance on SST-2 (BASELINES.md); with all linears
# adapted, 2e-3 collapsed once the warmup ended while 1e-3 was stable.
DEFAULT_LR = 1e-3
SUMMARY = "low-rank adapters on every attention/MLP linear (DoRA, rsLoRA, LoRA+ as options); merges for serving"

# Attention and MLP linears per architecture: adapting all of them keeps LoRA close to full fine-tuning on
# small encoders. BERT's classification head reads the pooler (a dense layer over [CLS] in the backbone), so
# it is adapted too where the model has one.
TARGETS: dict[str, list[str]] = {
    "bert": ["query", "key", "value", "attention.output.dense", "intermediate.dense", "output.dense",
             "pooler.dense"],
    "roberta": ["query", "key", "value", "attention.output.dense", "intermediate.dense", "output.dense"],
    "xlm-roberta": ["query", "key", "value", "attention.output.dense", "intermediate.dense", "output.dense"],
    "electra": ["query", "key", "value", "attention.output.dense", "intermediate.dense", "output.dense"],
    "distilbert": ["q_lin", "k_lin", "v_lin", "out_lin", "lin1", "lin2"],
    "llama": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "mistral": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "qwen2": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "qwen3": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "gemma2": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "gemma3_text": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "gpt2": ["c_attn", "c_proj", "c_fc"],
}
# LoRA+ ratio per task where measured (classification, SST-2: 4 beat plain LoRA); 1 elsewhere
B_LR_RATIO = {"classification": 4.0}


class Options(_Base):
    r: int = Field(8, gt=0, description="LoRA rank.")
    alpha: int = Field(16, gt=0, description="LoRA scaling alpha (the update is scaled by alpha/r, or "
                       "alpha/sqrt(r) with use_rslora).")
    dropout: float = Field(0.0, ge=0, lt=1, description="Dropout on the LoRA input (0 by default: peft draws one "
                           "mask per adapted module, which costs more CPU time than the adapters themselves).")
    target_modules: list[str] | None = Field(
        None, description="Module names to adapt; default: all attention and MLP linears of the architecture "
        "(and the pooler of BERT-style encoders, which feeds their classification head).")
    b_lr_ratio: float | None = Field(
        None, gt=0, description="LoRA+: the B matrices learn this many times faster than train.lr "
        "(1 = plain LoRA; default 4 for classification, 1 for other tasks).")
    use_dora: bool = Field(False, description="DoRA: learn each weight's magnitude apart from its low-rank "
                           "direction update (closer to full fine-tuning at low rank; slower steps).")
    use_rslora: bool = Field(False, description="rsLoRA: scale updates by alpha/sqrt(r) instead of alpha/r, so "
                             "large ranks keep learning.")


def lr_for(opts: Options) -> float:
    """rsLoRA scales updates by alpha/sqrt(r) instead of alpha/r, sqrt(r) times larger: the same default
    step in the output then needs a sqrt(r) times smaller rate (at LoRA's rate it diverged on SST-2)."""
    return DEFAULT_LR / math.sqrt(opts.r) if opts.use_rslora else DEFAULT_LR


def targets(model: Any, wanted: list[str] | None, where: str) -> list[str] | str:
    """The modules to adapt: ``wanted`` (checked), else the architecture's linears that this model has."""
    if wanted is not None:
        check_targets(model, wanted, where)
        return wanted
    model_type = getattr(getattr(model, "config", None), "model_type", "")
    known = TARGETS.get(model_type)
    if known and is_bare_backbone(model):  # no head reads the pooler: the embedding task pools the tokens
        known = [t for t in known if not t.startswith("pooler.")]
    return present(model, known) if known else "all-linear"


def apply(model: Any, opts: Options, ctx: Context) -> Any:
    from peft import LoraConfig

    from .base import wrap_peft

    config = LoraConfig(r=opts.r, lora_alpha=opts.alpha, lora_dropout=opts.dropout, use_dora=opts.use_dora,
                        use_rslora=opts.use_rslora, task_type=peft_task_type(model),
                        target_modules=targets(model, opts.target_modules, "tuning.lora.target_modules"),
                        modules_to_save=modules_to_save(model))
    return wrap_peft(model, config)


def param_groups(model: Any, lr: float, weight_decay: float, opts: Options, ctx: Context) -> list[dict[str, Any]]:
    ratio = opts.b_lr_ratio if opts.b_lr_ratio is not None else B_LR_RATIO.get(ctx.task, 1.0)
    if ratio == 1.0:
        return default_groups(model, weight_decay)
    faster = [p for n, p in model.named_parameters() if p.requires_grad and ".lora_B." in n]
    return default_groups(model, weight_decay, skip=faster) + [
        {"params": faster, "weight_decay": weight_decay, "lr": lr * ratio}]


HOOKS = Hooks(param_groups=param_groups, save=peft_save, load=peft_loader(mergeable=True))
