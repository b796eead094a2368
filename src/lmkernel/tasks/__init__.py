"""Task registry: one file per task, registered by name in a plain dict.

Entries hold an import path plus the few facts the spec needs (default metric and tuning, which
``task:`` options apply), so the spec can validate a task without importing torch.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class TaskInfo:
    target: str  # "module:Class"
    metrics: tuple[str, ...]  # scalar validation metrics train.metric may name; the first is the default
    tuning: str = "full"  # default tuning.method
    options: tuple[str, ...] = ()  # TaskSpec fields this task reads

    @property
    def metric(self) -> str:
        return self.metrics[0]


_REGISTRY: dict[str, TaskInfo] = {}


def register(name: str, target: str, *, metrics: tuple[str, ...], tuning: str = "full",
             options: tuple[str, ...] = ()) -> None:
    """Register a task class given as ``"module:Class"``; names are unique and lower-case."""
    if name in _REGISTRY:
        raise ValueError(f"task {name!r} is already registered")
    if name != name.lower() or not name.replace("_", "").isalnum():
        raise ValueError(f"task name {name!r} must be lower-case letters, digits and underscores")
    if not metrics:
        raise ValueError(f"task {name!r} must name at least one metric")
    _REGISTRY[name] = TaskInfo(target, tuple(metrics), tuning, tuple(options))


def task_names() -> list[str]:
    return sorted(_REGISTRY)


def task_info(name: str) -> TaskInfo:
    return _REGISTRY[name]


def get_task(name: str, options: dict[str, Any] | None = None) -> Any:
    """An instance of the registered task (imported on first use), configured with its options.

    ``options`` are the task's ``task:`` spec fields (from the spec, or from an artifact card);
    missing ones take the spec defaults.
    """
    from ..spec import TaskSpec

    module, cls = _REGISTRY[name].target.split(":")
    known = set(_REGISTRY[name].options)
    spec = TaskSpec(type=name, **{k: v for k, v in (options or {}).items() if k in known})
    return getattr(importlib.import_module(module), cls)(spec)


register("classification", "lmkernel.tasks.classification:ClassificationTask",
         metrics=("accuracy", "macro_f1", "loss"))
register("ner", "lmkernel.tasks.ner:NerTask", metrics=("f1", "precision", "recall", "loss"),
         options=("tag_column", "tag_scheme"))
register("pretrain", "lmkernel.tasks.pretrain:PretrainTask", metrics=("loss", "perplexity"),
         options=("objective", "mask_prob", "whole_word_mask"))
register("chat", "lmkernel.tasks.chat:ChatTask", metrics=("loss", "perplexity"), tuning="lora",
         options=("system_prompt",))
_SEQ2SEQ = ("source_column", "target_column", "prompt_template", "max_new_tokens", "eval_samples", "system_prompt")
register("translation", "lmkernel.tasks.seq2seq:TranslationTask", metrics=("loss", "perplexity"), tuning="lora",
         options=_SEQ2SEQ + ("source_lang", "target_lang"))
register("summarization", "lmkernel.tasks.seq2seq:SummarizationTask", metrics=("loss", "perplexity"),
         tuning="lora", options=_SEQ2SEQ)
