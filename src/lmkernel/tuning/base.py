"""The shape of a tuning method, and the pieces peft-based methods share.

A method is one file: an ``Options`` model (its ``tuning.<name>`` spec section), ``apply(model, opts,
ctx)`` and optional ``Hooks`` the training loop and the artifact call. Nothing here imports torch or
peft at module level, so the spec can list methods and their options without them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import LmkError
from ..models.quiet import quiet_libraries
from ..specmodel import SpecModel

if TYPE_CHECKING:
    from torch import nn

ALL_TASKS = ("classification", "ner", "chat", "translation", "summarization", "qa", "embedding")  # pretrain: full only
CAUSAL_TASKS = ("chat", "translation", "summarization")


class Options(SpecModel):
    """Base of every method's options: strict types, finite floats, unknown keys are errors, assignments
    are validated (``SpecModel``)."""


@dataclass(frozen=True)
class Context:
    """What a method may need to know beyond its options: the task."""

    task: str = "classification"


@dataclass(frozen=True)
class Hooks:
    """Optional behaviour, each called with the (unwrapped) model and the method's options.

    - ``param_groups(model, lr, weight_decay, opts, ctx)``: optimizer parameter groups (default: decay
      on matrices, none on biases and norms).
    - ``before_train(model, total_steps, opts)``: once the loop knows how many optimizer steps it runs.
    - ``after_step(model, global_step, opts)``: after every optimizer step, before gradients are zeroed.
    - ``state(model, opts) -> (json, tensors)`` / ``load_state(model, json, tensors, opts)``: method state saved
      with each resumable checkpoint (safetensors + JSON, never a pickle).
    - ``save(model, directory, merge) -> weights``: write the trained model into the artifact folder and
      return the card's ``weights`` value; ``load(base, directory, card)``: the inverse, from a freshly
      built base model.
    - ``fit(model, task, train_features, val_features, labels, opts, seed, run_dir, accelerator, pad_id,
      resume=, progress=, tuning=, objective=) -> TrainResult``: a method with its own training (``fewshot``:
      contrastive pairs, then a fitted head); ``pipeline.run`` calls it instead of ``training.train``, with
      the same arguments, and reads the same result.
    - ``check_spec(spec, continue_from)``: raise ``LmkError`` (where = the spec key) for a setting the user gave
      that the method cannot honour; called when the spec is validated and again by ``pipeline.run``.
    """

    param_groups: Callable[..., list[dict[str, Any]]] | None = None
    before_train: Callable[..., None] | None = None
    after_step: Callable[..., None] | None = None
    state: Callable[..., tuple[dict[str, Any], dict[str, Any]]] | None = None
    load_state: Callable[..., None] | None = None
    save: Callable[..., str] | None = None
    load: Callable[..., Any] | None = None
    fit: Callable[..., Any] | None = None
    check_spec: Callable[..., None] | None = None


@dataclass(frozen=True)
class Method:
    name: str
    options: type[Options]
    apply: Callable[..., Any]  # (model, opts, ctx) -> model
    default_lr: float
    summary: str  # one line for --help, the docs table and `lmkernel fields`
    hooks: Hooks = field(default_factory=Hooks)
    tasks: tuple[str, ...] = ALL_TASKS  # where it applies; elsewhere the spec refuses it
    not_for: str = ""  # why it does not apply to the other tasks
    mergeable: bool = True  # tuning.merge can fold it into plain weights
    lr_for: Callable[[Options], float] | None = None  # the default lr when it depends on the options

    def lr(self, opts: Options) -> float:
        """The default learning rate for these options."""
        return self.lr_for(opts) if self.lr_for is not None else self.default_lr


# ------------------------------------------------------------------------------------------------
# Helpers shared by the method files

LAYER_RE = re.compile(r"\.(?:layer|layers|h|block)\.(\d+)\.")


def is_causal_lm(model: nn.Module) -> bool:
    return type(model).__name__.endswith("ForCausalLM")


def head_names(model: nn.Module) -> list[str]:
    """Top-level modules outside the backbone: the task head (classifier, score, ...)."""
    prefix = getattr(model, "base_model_prefix", "")
    return [name for name, child in model.named_children()
            if name != prefix and any(True for _ in child.parameters()) and type(child).__name__ != "ModuleDict"]


def linear_names(model: nn.Module) -> list[str]:
    from torch import nn

    return sorted({n.split(".")[-1] for n, m in model.named_modules() if isinstance(m, nn.Linear)})


def check_targets(model: nn.Module, targets: list[str], where: str) -> None:
    """Refuse module names the model lacks (peft's rule: the full name or its dotted suffix)."""
    found = set(present(model, targets))
    unknown = [t for t in targets if t not in found]
    if unknown:
        model_type = getattr(getattr(model, "config", None), "model_type", "") or "model"
        raise LmkError(f"target module(s) {unknown} not found in this {model_type}", where=where,
                       fix="use names of nn.Linear modules in the model, e.g. " + ", ".join(linear_names(model)[:8]))


def present(model: nn.Module, targets: list[str]) -> list[str]:
    """The targets the model has: a module with that name or that dotted suffix (peft's rule)."""
    names = {n for n, _ in model.named_modules()}
    return [t for t in targets if any(n == t or n.endswith("." + t) for n in names)]


def is_bare_backbone(model: nn.Module) -> bool:
    """A model without a task head (``AutoModel``: the embedding task's encoder)."""
    return getattr(model, "base_model", None) is model


def peft_task_type(model: nn.Module) -> str | None:
    """peft's task type for the model; None (a plain ``PeftModel``, which passes every input through) for
    question answering: peft 0.21's ``PeftModelForQuestionAnswering`` drops ``token_type_ids``, so BERT would
    train on segment 0 everywhere and then be served with the real segments."""
    name = type(model).__name__
    if is_bare_backbone(model):
        return "FEATURE_EXTRACTION"
    if name.endswith("ForCausalLM"):
        return "CAUSAL_LM"
    if name.endswith("ForTokenClassification"):
        return "TOKEN_CLS"
    if name.endswith("ForQuestionAnswering"):
        return None
    return "SEQ_CLS"


def modules_to_save(model: nn.Module) -> list[str] | None:
    """The task head trains fully beside the adapter (a causal LM's head is its tied embedding: none)."""
    return None if is_causal_lm(model) or is_bare_backbone(model) else head_names(model)


def wrap_peft(model: nn.Module, config: Any) -> nn.Module:
    from peft import get_peft_model

    try:
        with quiet_libraries():
            return get_peft_model(model, config)
    except (ValueError, TypeError, AttributeError, NotImplementedError) as e:
        raise LmkError(f"peft cannot apply {type(config).__name__} to this {type(model).__name__}: {e}",
                       where="tuning", fix="pick another tuning.method, or adjust its target modules") from e


def peft_save(model: nn.Module, directory: Path, merge: bool) -> str:
    """A peft adapter in ``directory`` (plain ``PeftModel.from_pretrained`` loads it); with ``merge``,
    merged full weights there and the adapter in ``directory/adapter``."""
    if merge:
        model.save_pretrained(str(directory / "adapter"))
        model.merge_and_unload().save_pretrained(str(directory), safe_serialization=True)
        return "merged"
    model.save_pretrained(str(directory))
    return "adapter"


def refuse_merge(merge: bool, why: str) -> None:
    """A method that cannot merge refuses ``tuning.merge`` at save time too (the spec refuses it earlier;
    this guards callers that build a model by hand)."""
    if merge:
        raise LmkError(f"tuning.merge is true, but this method cannot merge into the weights ({why})",
                       where="tuning.merge", fix="set tuning.merge: false (the artifact loads with lmkernel.load)")


def peft_saver_without_merge(why: str) -> Callable[..., str]:
    """``save`` for a peft method that cannot merge."""

    def save(model: nn.Module, directory: Path, merge: bool) -> str:
        refuse_merge(merge, why)
        return peft_save(model, directory, merge=False)

    return save


def peft_loader(mergeable: bool) -> Callable[..., Any]:
    """Load a peft adapter onto a fresh base model; merged for fast inference where the method allows."""

    def load(base: nn.Module, directory: Path, card: dict[str, Any]) -> nn.Module:
        from peft import PeftModel

        try:
            with quiet_libraries():
                model = PeftModel.from_pretrained(base, str(directory))
        except (OSError, ValueError, RuntimeError, KeyError) as e:
            raise LmkError(f"cannot load the {card.get('tuning', 'peft')} adapter in {directory}: {e}",
                           where=str(directory), fix="the adapter files are damaged or do not match the base "
                           f"model {card.get('base_model')!r}; re-run training") from e
        return model.merge_and_unload() if mergeable else model

    return load


def is_prompt_learning(model: Any) -> bool:
    """A peft prompt/prefix-tuning model: its forward adds virtual tokens, so hand-made forwards step aside."""
    config = getattr(model, "active_peft_config", None)
    return bool(getattr(config, "is_prompt_learning", False))
