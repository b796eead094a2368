"""Tuning methods as plugins: which parameters train, and how, registered by name.

Each method is one file in this package (its options model, ``apply`` and optional hooks) plus one
``register`` line at the bottom of this file. The spec builds ``tuning.<name>`` sections from the
registry, the CLI and ``lmkernel fields`` list it, the training loop calls the hooks, the artifact
saves and loads through them, and the conformance suite runs every registered method.
"""

from __future__ import annotations

import difflib
from typing import TYPE_CHECKING, Any

from ..errors import LmkError
from .base import ALL_TASKS, Context, Hooks, Method, Options

if TYPE_CHECKING:
    from torch import nn

__all__ = ["Context", "Hooks", "Method", "Options", "Tuning", "apply_tuning", "count_parameters", "get_method",
           "method_names", "methods", "refusal", "register", "serving_model"]

_METHODS: dict[str, Method] = {}


def register(name: str, options: type[Options], apply: Any, *, default_lr: float, summary: str,
             hooks: Hooks | None = None, tasks: tuple[str, ...] = ALL_TASKS, not_for: str = "",
             mergeable: bool = True, lr_for: Any = None) -> None:
    """Add a method. Names are unique lower-case identifiers; they become ``tuning.method`` values
    and the ``tuning.<name>`` spec section holding ``options``."""
    if name in _METHODS:
        raise ValueError(f"tuning method {name!r} is already registered")
    if name != name.lower() or not name.replace("_", "").isalnum():
        raise ValueError(f"tuning method name {name!r} must be lower-case letters, digits and underscores")
    if not (isinstance(options, type) and issubclass(options, Options)):
        raise TypeError(f"tuning method {name!r}: options must subclass lmkernel.tuning.Options")
    _METHODS[name] = Method(name, options, apply, default_lr, summary, hooks or Hooks(), tuple(tasks), not_for,
                            mergeable, lr_for)


def methods() -> dict[str, Method]:
    return dict(_METHODS)


def method_names() -> list[str]:
    return sorted(_METHODS)


def get_method(name: str) -> Method:
    if name not in _METHODS:
        close = difflib.get_close_matches(name, list(_METHODS), n=1)
        raise LmkError(f"unknown tuning method {name!r}", where="tuning.method",
                       fix=(f"did you mean {close[0]!r}? " if close else "") + "known: " + ", ".join(method_names()))
    return _METHODS[name]


def refusal(name: str, task: str) -> tuple[str, str] | None:
    """(what, fix) when method ``name`` does not apply to ``task``, else None: the spec and ``Tuning.apply``
    say the same."""
    method = get_method(name)
    if task in method.tasks:
        return None
    fit = ", ".join(n for n, m in sorted(_METHODS.items()) if task in m.tasks)
    return (f"tuning.method {name!r} does not apply to task {task!r}" + (f": {method.not_for}" if method.not_for
                                                                          else ""), f"methods for it: {fit}")


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total


class Tuning:
    """A method with its options for one run: what the pipeline, the loop and the artifact hold."""

    def __init__(self, name: str, options: Options | dict[str, Any] | None = None, task: str = "classification"):
        self.method = get_method(name)
        if not isinstance(options, Options):
            options = self.method.options(**(options or {}))
        self.options = options
        self.ctx = Context(task=task)

    @property
    def name(self) -> str:
        return self.method.name

    def apply(self, model: nn.Module) -> nn.Module:
        refused = refusal(self.name, self.ctx.task)
        if refused is not None:
            raise LmkError(refused[0], where="tuning.method", fix=refused[1])
        return self.method.apply(model, self.options, self.ctx)

    def hook(self, name: str) -> Any:
        return getattr(self.method.hooks, name)


def serving_model(model: nn.Module) -> nn.Module:
    """The model generation should drive: a prompt/prefix-tuned (peft prompt-learning) model becomes a
    plain causal LM started from its virtual tokens' keys and values (``virtual.py``); others as they are."""
    from .base import is_prompt_learning

    if not is_prompt_learning(model):
        return model
    from .virtual import virtual_prefix_lm

    return virtual_prefix_lm(model)


def apply_tuning(model: nn.Module, method: str, task: str | None = None, **options: Any) -> nn.Module:
    """Return the model prepared for ``method`` (requires_grad set, adapters added); ``options`` are the
    fields of the method's options model. ``task`` defaults to the model's kind."""
    if task is None:
        from .base import peft_task_type

        task = {"CAUSAL_LM": "chat", "TOKEN_CLS": "ner"}.get(peft_task_type(model), "classification")
    return Tuning(method, options, task).apply(model)


def register_module(module: Any) -> None:
    """Register a method file: it defines ``NAME``, ``Options``, ``apply``, ``DEFAULT_LR``, ``SUMMARY`` and
    optionally ``HOOKS``, ``TASKS``, ``NOT_FOR``, ``MERGEABLE`` and ``lr_for(opts)`` (a default learning rate
    that depends on the options)."""
    register(module.NAME, module.Options, module.apply, default_lr=module.DEFAULT_LR, summary=module.SUMMARY,
             hooks=getattr(module, "HOOKS", None), tasks=getattr(module, "TASKS", ALL_TASKS),
             not_for=getattr(module, "NOT_FOR", ""), mergeable=getattr(module, "MERGEABLE", True),
             lr_for=getattr(module, "lr_for", None))


from . import adalora, adapters, fewshot, freeze, full, ia3, lora, prefix, prompt  # noqa: E402  (built-in methods)

register_module(full)
register_module(freeze)
register_module(lora)
register_module(adalora)
register_module(ia3)
register_module(prompt)
register_module(prefix)
register_module(adapters)
register_module(fewshot)
