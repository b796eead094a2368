"""Task registry: one file per task, registered by name in a plain dict.

A task file declares its options model, its metrics and its serving pieces in a ``TaskInfo``; one
``register`` line here adds it. The spec builds ``task:`` as the union of the registered options,
the CLI and the training loop read the metrics, the server reads the serving pieces. Task files
import torch only inside their functions, so the spec can validate a task without it.
"""

from __future__ import annotations

from typing import Any

from .base import TaskInfo, TaskOptions

__all__ = ["TaskInfo", "TaskOptions", "get_task", "register", "task_info", "task_names"]

_REGISTRY: dict[str, TaskInfo] = {}


def register(info: TaskInfo) -> None:
    """Add a task; names are unique and lower-case, and its options say ``type: Literal[name]``."""
    name = info.name
    if name in _REGISTRY:
        raise ValueError(f"task {name!r} is already registered")
    if name != name.lower() or not name.replace("_", "").isalnum():
        raise ValueError(f"task name {name!r} must be lower-case letters, digits and underscores")
    if not info.metrics:
        raise ValueError(f"task {name!r} must name at least one metric")
    if not (isinstance(info.options, type) and issubclass(info.options, TaskOptions)):
        raise TypeError(f"task {name!r}: options must subclass lmkernel.tasks.TaskOptions")
    if info.options.model_fields["type"].default != name:
        raise ValueError(f"task {name!r}: its options must declare type: Literal[{name!r}] = {name!r}")
    _REGISTRY[name] = info


def task_names() -> list[str]:
    return sorted(_REGISTRY)


def task_info(name: str) -> TaskInfo:
    return _REGISTRY[name]


def get_task(name: str, options: TaskOptions | dict[str, Any] | None = None) -> Any:
    """An instance of the registered task, configured with its options: a ``TaskOptions`` (from the
    spec) or a dict (an artifact card's ``task_options``; missing ones take their defaults, keys the
    task no longer has are ignored)."""
    info = _REGISTRY[name]
    if not isinstance(options, TaskOptions):
        known = set(info.options.model_fields) - {"type"}
        options = info.options(**{k: v for k, v in (options or {}).items() if k in known})
    return info.cls(options)


from . import chat, classification, embedding, ner, pretrain, qa, seq2seq  # noqa: E402  (built-in tasks)

register(classification.INFO)
register(ner.INFO)
register(pretrain.INFO)
register(chat.INFO)
register(seq2seq.TRANSLATION)
register(seq2seq.SUMMARIZATION)
register(qa.INFO)
register(embedding.INFO)
