"""Which endpoints and which predictor serve each task: one plain dict, filled by ``register``.

The app factory includes the router of the artifact's task (plus the system routes every app
has); ``load_predictor`` wraps the loaded model in that task's predictor. A generation server
plugs in as one more ``register`` line with its router and predictor.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter

from ...errors import LmkError
from ..entities import NerPredictor
from ..generation.predictor import GenerationPredictor
from ..predictor import ClassifierPredictor, Predictor
from . import classify, entities, generate


@dataclass(frozen=True)
class TaskServing:
    router: APIRouter
    predictor: Callable[..., Predictor]  # (model, max_input_tokens=, precision=, threads=) -> Predictor


_REGISTRY: dict[str, TaskServing] = {}


def register(task: str, router: APIRouter, predictor: Callable[..., Predictor]) -> None:
    """Serve ``task`` with ``router`` and ``predictor``; a task is registered once."""
    if task in _REGISTRY:
        raise ValueError(f"serving for task {task!r} is already registered")
    _REGISTRY[task] = TaskServing(router, predictor)


def serving_for(task: str, where: str = "the model card") -> TaskServing:
    """Raises:
    LmkError: no endpoint serves this task yet.
    """
    if task not in _REGISTRY:
        raise LmkError(f"lmkernel serve has no endpoint for task {task!r} yet", where=where,
                       fix=f"serve an artifact of one of these tasks: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[task]


def load_predictor(path: Any, **options: Any) -> Predictor:
    """Load an artifact (``lmkernel.load``) and wrap it in its task's predictor.

    Raises:
        LmkError: the artifact is missing or damaged, or its task is not served.
    """
    from ...artifact import load

    model = load(path)
    return serving_for(model.card["task"], where=str(path)).predictor(model, **options)


register("classification", classify.router, ClassifierPredictor)
register("ner", entities.router, NerPredictor)
for _task in ("chat", "translation", "summarization"):  # causal LMs: the prompt formats are theirs
    register(_task, generate.router, GenerationPredictor)
