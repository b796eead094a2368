"""POST /v1/explain: word attributions and their faithfulness, the same JSON as ``lmkernel explain --json``.

Explanations need gradients, which the served model no longer has once it is prepared for fast
inference (packed linear layers, ONNX), so the route explains with its own copy of the artifact, loaded
exactly as ``lmkernel.load(run, backend="exact")`` on the first request. Explanations run one at a
time in a worker thread: each is a batch of its own and would only slow the others down.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, FastAPI, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from ...errors import LmkError
from ..deps import ready_service
from ..http_errors import ApiError
from ..schemas import Text, error_responses, json_body
from .lean import LeanRoute
from .texts import texts_body

EXPLAINED_TASKS = ("classification", "ner", "chat", "translation", "summarization", "pretrain")

router = APIRouter(prefix="/v1", tags=["explanations"], route_class=LeanRoute)


class ExplainRequest(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid",
                              json_schema_extra={"examples": [{"texts": ["great film"], "label": "positive"}]})

    texts: list[Text] = Field(min_length=1, description="Texts to explain (at most --max-texts per request).")
    label: str | None = Field(None, description="Explain this label instead of the predicted one (ner: entities "
                              "of this type; generation: this continuation).")
    method: Literal["auto", "ig", "occlusion"] = Field("auto", description="ig: integrated gradients; occlusion: "
                                                       "word deletion; auto: ig where it applies.")
    steps: int = Field(4, ge=1, le=256, description="Integration points of ig.")
    max_new_tokens: int = Field(8, ge=1, le=64, description="Generation: output tokens to explain.")


class ExplainResponse(BaseModel):
    model: str
    results: list[dict[str, Any]] = Field(description="Per text: text, task, label, score, method, words "
                                          "[{word, start, end, score}], comprehensiveness, sufficiency and "
                                          "*_random (ner: entities, each with its own words and faithfulness).")


class Explainer:
    """The artifact copy explanations run on, loaded on first use."""

    def __init__(self, source: Any):
        self.source = source  # a run path, or an already loaded ``lmkernel.load`` handle
        self._handle = None
        self._lock = threading.Lock()

    def handle(self) -> Any:
        with self._lock:
            if self._handle is None:
                if isinstance(self.source, (str, Path)):
                    from ...artifact import load

                    self._handle = load(self.source, backend="exact")
                else:
                    self._handle = self.source
            return self._handle

    def explain(self, body: ExplainRequest) -> list[dict[str, Any]]:
        from ...trust.explain import explain

        handle = self.handle()
        with self._lock:
            return explain(handle, list(body.texts), label=body.label, method=body.method, n_steps=body.steps,
                           max_new_tokens=body.max_new_tokens)


def mount(app: FastAPI, source: Any, task: str) -> bool:
    """Add /v1/explain to ``app`` for a run (path or loaded handle) whose task explanations cover."""
    if task not in EXPLAINED_TASKS:
        return False
    app.state.explainer = Explainer(source)
    app.include_router(router)
    return True


@router.post("/explain", response_model=ExplainResponse, openapi_extra=json_body(ExplainRequest),
             responses=error_responses(401, 413, 422, 429, 503, 504),
             summary="Explain predictions", description="Per text, a score per word (positive pushes toward the "
             "label) with comprehensiveness and sufficiency against random words.")
async def explain(request: Request) -> ExplainResponse:
    service = ready_service(request)
    body = await texts_body(request, service.settings, ExplainRequest)
    try:
        results = await asyncio.wait_for(run_in_threadpool(request.app.state.explainer.explain, body),
                                         service.settings.timeout_s)
    except LmkError as e:
        raise ApiError(422, e.what + (f" ({e.fix})" if e.fix else ""),
                       param="label" if "label" in e.what else None) from None
    except TimeoutError as e:
        raise ApiError(504, f"explaining took longer than the server deadline of {service.settings.timeout_s:g}s "
                       "(--timeout-s); send fewer or shorter texts") from e
    return ExplainResponse(model=service.predictor.name, results=results)
