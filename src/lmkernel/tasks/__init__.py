"""Task registry: one file per task, registered by name in a plain dict.

Entries are import paths so that the spec can check task names without importing torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_REGISTRY: dict[str, str] = {}


def register(name: str, target: str) -> None:
    """Register a task class given as ``"module:Class"``; names are unique and lower-case."""
    if name in _REGISTRY:
        raise ValueError(f"task {name!r} is already registered")
    if name != name.lower() or not name.replace("_", "").isalnum():
        raise ValueError(f"task name {name!r} must be lower-case letters, digits and underscores")
    _REGISTRY[name] = target


def task_names() -> list[str]:
    return sorted(_REGISTRY)


def get_task(name: str) -> Any:
    """An instance of the registered task (imported on first use)."""
    module, cls = _REGISTRY[name].split(":")
    return getattr(importlib.import_module(module), cls)()


register("classification", "lmkernel.tasks.classification:ClassificationTask")
