"""AdaLoRA (peft): LoRA whose ranks are re-allocated during training by importance.

Adapters start at ``init_r``; after ``tinit`` steps the budget shrinks towards ``target_r`` per module on
average, the least important singular values masked, until ``tfinal`` steps before the end. peft only
does this when ``update_and_allocate`` runs after each optimizer step, which is this method's
``after_step`` hook: without it AdaLoRA silently trains as plain LoRA at ``init_r``.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from .base import Context, Hooks, modules_to_save, peft_loader, peft_save, peft_task_type
from .base import Options as _Base
from .lora import targets

NAME = "adalora"
DEFAULT_LR = 2e-3  # SST-2 (MiniLM, 20k rows): 2e-3 within a point of full fine-tuning, 1e-3 two points below
SUMMARY = "LoRA whose ranks move to the modules that matter during training (init_r -> target_r)"


class Options(_Base):
    # 10, not peft's 12: the parameter count at the start stays near LoRA's (BENCHMARKS.md, tuning methods)
    init_r: int = Field(10, gt=0, description="Starting rank of every adapted module.")
    target_r: int = Field(8, gt=0, description="Average rank per module once the budget is allocated.")
    alpha: int = Field(16, gt=0, description="Scaling alpha.")
    dropout: float = Field(0.0, ge=0, lt=1, description="Dropout on the adapter input.")
    tinit: float = Field(0.1, ge=0, lt=1, description="Share of the steps trained at init_r before ranks "
                         "start to move (warm-up of the importance scores).")
    tfinal: float = Field(0.2, ge=0, lt=1, description="Share of the steps at the end trained with the final "
                          "ranks fixed.")
    delta_t: int = Field(1, gt=0, description="Re-allocate ranks every this many optimizer steps.")
    beta1: float = Field(0.85, gt=0, lt=1, description="Smoothing of the importance scores.")
    beta2: float = Field(0.85, gt=0, lt=1, description="Smoothing of their uncertainty.")
    orth_reg_weight: float = Field(0.5, ge=0, description="Weight of the orthogonality penalty on P and Q.")
    target_modules: list[str] | None = Field(None, description="Module names to adapt; default: as LoRA.")

    @model_validator(mode="after")
    def _budget(self) -> Options:
        if self.target_r > self.init_r:
            raise ValueError(f"target_r={self.target_r} is above init_r={self.init_r} (AdaLoRA only removes rank)")
        if self.tinit + self.tfinal >= 1:
            raise ValueError("tinit + tfinal must leave some steps for the ranks to move (their sum is below 1)")
        return self


def apply(model: Any, opts: Options, ctx: Context) -> Any:
    from peft import AdaLoraConfig

    from .base import wrap_peft

    config = AdaLoraConfig(init_r=opts.init_r, target_r=opts.target_r, lora_alpha=opts.alpha,
                           lora_dropout=opts.dropout, tinit=0, tfinal=0, deltaT=opts.delta_t, beta1=opts.beta1,
                           beta2=opts.beta2, orth_reg_weight=opts.orth_reg_weight,
                           total_step=1_000_000,  # replaced by before_train once the loop knows its steps
                           task_type=peft_task_type(model), modules_to_save=modules_to_save(model),
                           target_modules=targets(model, opts.target_modules, "tuning.adalora.target_modules"))
    model = wrap_peft(model, config)

    def task_loss_in_eval(module: Any, args: Any) -> None:
        """peft adds the orthogonality penalty to every forward's loss; evaluation reports the task's loss."""
        config.orth_reg_weight = opts.orth_reg_weight if module.training else 0.0

    model.base_model.register_forward_pre_hook(task_loss_in_eval)
    return model


def _config(model: Any) -> Any:
    return model.peft_config[model.active_adapter]


def before_train(model: Any, total_steps: int, opts: Options) -> None:
    """The schedule in steps: ``tinit`` steps of warm-up, ranks final ``tfinal`` steps before the end."""
    config = _config(model)
    config.total_step = total_steps
    config.tinit = int(opts.tinit * total_steps)
    config.tfinal = min(int(opts.tfinal * total_steps), max(total_steps - config.tinit - 1, 0))


def after_step(model: Any, global_step: int, opts: Options) -> None:
    model.base_model.update_and_allocate(global_step)


_SCORES = ("ipt", "exp_avg_ipt", "exp_avg_unc")


def state(model: Any, opts: Options) -> tuple[dict[str, Any], dict[str, Any]]:
    """The rank allocator's importance scores (tensors) and the rank pattern so far (JSON)."""
    alloc = model.base_model.rankallocator
    tensors = {f"{kind}/{name}": t.detach().cpu().contiguous()
               for kind in _SCORES for name, t in getattr(alloc, kind).items()}
    pattern = _config(model).rank_pattern
    return {"rank_pattern": {k: [bool(x) for x in v] for k, v in (pattern or {}).items()}}, tensors


def load_state(model: Any, meta: dict[str, Any], tensors: dict[str, Any], opts: Options) -> None:
    alloc = model.base_model.rankallocator
    device = next(model.parameters()).device
    for kind in _SCORES:
        setattr(alloc, kind, {k.split("/", 1)[1]: t.to(device) for k, t in tensors.items() if k.startswith(kind + "/")})
    if meta.get("rank_pattern"):
        _config(model).rank_pattern = meta["rank_pattern"]


HOOKS = Hooks(before_train=before_train, after_step=after_step, state=state, load_state=load_state,
              save=peft_save, load=peft_loader(mergeable=True))
