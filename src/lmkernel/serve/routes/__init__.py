"""Which endpoints and which predictor serve each task: what the task's file declares.

The app factory includes the router of the artifact's task (plus the system routes every app
has); ``load_predictor`` wraps the loaded model in that task's predictor. A task names its router
and predictor in its ``TaskInfo.serving`` (import paths), so a new served task touches no file here.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter

from ...errors import LmkError
from ..predictor import Predictor


@dataclass(frozen=True)
class TaskServing:
    router: APIRouter
    predictor: Callable[..., Predictor]  # (model, max_input_tokens=, precision=, threads=) -> Predictor


def _load(target: str) -> Any:
    module, attr = target.split(":")
    return getattr(importlib.import_module(module), attr)


def serving_for(task: str, where: str = "the model card") -> TaskServing:
    """The router and predictor the task's file declares (``TaskInfo.serving``).

    Raises:
    LmkError: no endpoint serves this task yet.
    """
    from ...tasks import task_info, task_names

    served = [n for n in task_names() if task_info(n).serving]
    if task not in served:
        raise LmkError(f"lmkernel serve has no endpoint for task {task!r} yet", where=where,
                       fix=f"serve an artifact of one of these tasks: {', '.join(served)}")
    router, predictor = task_info(task).serving
    return TaskServing(_load(router), _load(predictor))


def load_predictor(path: Any, **options: Any) -> Predictor:
    """Load an artifact (``lmkernel.load``) and wrap it in its task's predictor.

    Raises:
        LmkError: the artifact is missing or damaged, or its task is not served.
    """
    from ...artifact import load

    model = load(path)
    return serving_for(model.card["task"], where=str(path)).predictor(model, **options)
