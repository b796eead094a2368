"""Tuning methods: which parameters train, registered by name.

``full`` trains everything, ``lora`` wraps the model with a peft LoRA adapter, ``freeze`` trains
the task head (and optionally the top k layers). Each method is a plain function
``(model, **options) -> model`` in a dict, so the spec, the CLI and the docs read one list.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch loads lazily so the spec can list methods without it
    from torch import nn

from .errors import LmkError

_METHODS: dict[str, Callable[..., nn.Module]] = {}

# Attention and MLP linears per architecture: adapting all of them gets LoRA within a point of
# full fine-tuning on small encoders at ~1.5% trainable parameters. BERT's classification head
# reads the pooler (a dense layer over [CLS] that is part of the backbone, so not saved as head):
# it is adapted too where the model has one.
LORA_TARGETS: dict[str, list[str]] = {
    "bert": ["query", "key", "value", "attention.output.dense", "intermediate.dense", "output.dense",
             "pooler.dense"],
    "roberta": ["query", "key", "value", "attention.output.dense", "intermediate.dense", "output.dense"],
    "xlm-roberta": ["query", "key", "value", "attention.output.dense", "intermediate.dense", "output.dense"],
    "electra": ["query", "key", "value", "attention.output.dense", "intermediate.dense", "output.dense"],
    "distilbert": ["q_lin", "k_lin", "v_lin", "out_lin", "lin1", "lin2"],
    "llama": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "mistral": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "qwen2": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "gpt2": ["c_attn", "c_proj", "c_fc"],
}

_LAYER_RE = re.compile(r"\.(?:layer|layers|h|block)\.(\d+)\.")


def register(name: str, fn: Callable[..., nn.Module]) -> None:
    if name in _METHODS:
        raise ValueError(f"tuning method {name!r} is already registered")
    _METHODS[name] = fn


def method_names() -> list[str]:
    return sorted(_METHODS)


def apply_tuning(model: nn.Module, method: str, **options: Any) -> nn.Module:
    """Return the model prepared for ``method`` (requires_grad set, adapters added)."""
    return _METHODS[method](model, **options)


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total


def _full(model: nn.Module, train_embeddings: bool = True, **_: Any) -> nn.Module:
    for p in model.parameters():
        p.requires_grad_(True)
    embeddings = model.get_input_embeddings()
    lm_head = model.get_output_embeddings() is not None  # language models (often tied to it) keep it training
    if not train_embeddings and embeddings is not None and not lm_head:
        embeddings.weight.requires_grad_(False)
    return model


def _head_names(model: nn.Module) -> list[str]:
    """Top-level modules outside the backbone: the task head (classifier, score, ...)."""
    prefix = getattr(model, "base_model_prefix", "")
    return [name for name, child in model.named_children()
            if name != prefix and any(True for _ in child.parameters()) and type(child).__name__ != "ModuleDict"]


def _linear_names(model: nn.Module) -> list[str]:
    from torch import nn

    return sorted({n.split(".")[-1] for n, m in model.named_modules() if isinstance(m, nn.Linear)})


def _lora(model: nn.Module, r: int = 8, alpha: int = 16, dropout: float = 0.0,
          target_modules: list[str] | None = None, task_type: str = "SEQ_CLS", **_: Any) -> nn.Module:
    from peft import LoraConfig, get_peft_model

    model_type = getattr(getattr(model, "config", None), "model_type", "")
    names = {n for n, _ in model.named_modules()}

    def present(target: str) -> bool:  # peft's rule: the full name or its dotted suffix
        return any(n == target or n.endswith("." + target) for n in names)

    targets = target_modules or LORA_TARGETS.get(model_type, "all-linear")
    if target_modules is None and isinstance(targets, list):  # defaults: those this model has (no pooler in NER)
        targets = [t for t in targets if present(t)]
    if isinstance(targets, list):
        unknown = [t for t in targets if not present(t)]
        if unknown:
            raise LmkError(
                f"LoRA target module(s) {unknown} not found in this {model_type or 'model'}",
                where="tuning.lora.target_modules",
                fix="use names of nn.Linear modules in the model, e.g. " + ", ".join(_linear_names(model)[:8]),
            )
    heads = _head_names(model)
    if type(model).__name__.endswith("ForCausalLM"):  # the LM head is the (tied) embedding: nothing to save
        task_type, heads = "CAUSAL_LM", None
    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=targets,
                        task_type=task_type, modules_to_save=heads)
    return get_peft_model(model, config)


def _freeze(model: nn.Module, train_top_layers: int = 0, **_: Any) -> nn.Module:
    names = [n for n, _ in model.named_parameters()]
    layers = sorted({int(m.group(1)) for n in names if (m := _LAYER_RE.search("." + n))})
    if train_top_layers > len(layers):
        raise LmkError(
            f"tuning.freeze.train_top_layers={train_top_layers} but the model has {len(layers)} layers",
            where="tuning.freeze.train_top_layers",
            fix=f"use a value between 0 and {len(layers)}",
        )
    top = set(layers[len(layers) - train_top_layers:]) if train_top_layers else set()
    heads = tuple(h + "." for h in _head_names(model))
    for name, p in model.named_parameters():
        m = _LAYER_RE.search("." + name)
        p.requires_grad_(name.startswith(heads) or ".pooler." in "." + name or bool(m and int(m.group(1)) in top))
    return model


register("full", _full)
register("lora", _lora)
register("freeze", _freeze)
