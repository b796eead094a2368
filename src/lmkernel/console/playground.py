"""Playground: a run's model on text typed in the page — classify or tag with explanations, and search a
knowledge index (chat: chat.py). Models load once per run and stay loaded while the console runs."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from ..errors import LmkError
from ..serve.http_errors import ApiError
from .app import Console, authorized
from .runs_api import run_path

router = APIRouter()
_load_lock = threading.Lock()
GENERATIVE = ("chat", "translation", "summarization", "pretrain", "causal_lm")


class TextIn(BaseModel):
    run: str
    text: str = Field(min_length=1, max_length=20_000)
    explain: bool = True


class SearchIn(BaseModel):
    index: str = Field(min_length=1)
    query: str = Field(min_length=1, max_length=2000)
    k: int = Field(5, gt=0, le=50)


def model_for(console: Console, run: str) -> Any:
    """The loaded run (``lmkernel.load``), loaded on first use."""
    path = run_path(console, run)
    with _load_lock:
        if run not in console.models:
            import lmkernel

            if console.threads:
                import torch

                torch.set_num_threads(console.threads)
            try:
                console.models[run] = lmkernel.load(path)
            except LmkError as e:
                raise ApiError(422, f"cannot load run {run!r}: {e.what}", param="run") from e
        return console.models[run]


@router.post("/predict")
def predict(body: TextIn, console: Console = Depends(authorized)) -> dict[str, Any]:
    """The run's prediction for one text; classification also gets word attributions (Model.explain)."""
    model = model_for(console, body.run)
    task = model.card.get("task")
    if task in GENERATIVE:
        raise ApiError(422, f"run {body.run!r} is a {task} model: use the chat box", param="run")
    try:
        prediction = model.predict(body.text)[0]
        explained = model.explain(body.text, faithful=False)[0] if body.explain and task == "classification" \
            else None
    except LmkError as e:
        raise ApiError(422, e.what, param="text") from e
    return {"task": task, "prediction": _plain(prediction), "explanation": _plain(explained)}


@router.post("/search")
def search(body: SearchIn, console: Console = Depends(authorized)) -> dict[str, Any]:
    """The best chunks of a knowledge index (a folder under the console's, or under where it started)."""
    from ..knowledge.index import open_index

    path = _index_path(console, body.index)
    try:
        hits = open_index(path).search(body.query, k=body.k)
    except LmkError as e:
        raise ApiError(422, e.what, param="index") from e
    return {"hits": [{"text": h.text, "score": h.score, "source": h.source} for h in hits]}


def _index_path(console: Console, given: str) -> Path:
    for base in (console.base, console.root):
        path = (base / given).resolve()
        if (path.is_relative_to(console.base) or path.is_relative_to(console.root)) and path.is_dir():
            return path
    raise ApiError(404, f"no index folder {given!r} under the console's folders", param="index")


def _plain(value: Any) -> Any:
    """Numpy scalars and arrays in a prediction as plain JSON values."""
    return json.loads(json.dumps(value, default=lambda v: v.tolist() if hasattr(v, "tolist") else str(v)))
