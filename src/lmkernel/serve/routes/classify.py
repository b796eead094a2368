"""POST /v1/classify: labels and probabilities for a list of texts.

decode (limits.parse_body) -> encode (tokenize, 413 on too many texts or tokens; long bodies in a
thread, ``texts.tokenize``) -> predict (the batcher, off the event loop) -> respond.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from .. import content_guard
from ..deps import check_caller, ready_service
from ..schemas import ClassifyRequest, ClassifyResponse, Usage, error_responses, json_body
from .lean import LeanRoute
from .texts import texts_body, tokenize

router = APIRouter(prefix="/v1", tags=["classification"], route_class=LeanRoute)


@router.post("/classify", response_model=ClassifyResponse, openapi_extra=json_body(ClassifyRequest),
             responses=error_responses(401, 413, 422, 429, 503, 504),
             summary="Classify texts", description="One label, its score and every label's probability per text.")
async def classify(request: Request) -> ClassifyResponse:
    service = ready_service(request)
    body = await texts_body(request, service.settings, ClassifyRequest)
    predictor = service.predictor
    texts, found = content_guard.check_typed(service, body.texts, "input")
    ids = await tokenize(sum(map(len, texts)), predictor.encode, texts, body.truncate)
    tokens = sum(map(len, ids))
    service.metrics.input_tokens.inc(tokens)
    results = await service.infer(ids, tokens)
    flags = content_guard.check_predictions(service, results)
    if service.monitor is not None:  # monitoring hook: windows, alert rules, audit log (serve/monitoring.py)
        service.monitor.observe(predictor, texts, results, [a + b for a, b in zip(found, flags)])  # texts as guarded
    return ClassifyResponse(model=predictor.name, results=results, usage=Usage(input_tokens=tokens))


@router.get("/monitor", responses=error_responses(401, 429), summary="Monitoring windows, drift and alerts",
            description="Label shares, confidence, ood and low-confidence rates and guard hits per window, "
            "drift against the model's reference, and each alert rule's state (serve/monitoring.py).")
async def monitor(request: Request) -> JSONResponse:
    service = request.app.state.service
    check_caller(request, service)
    return JSONResponse(service.monitor.snapshot() if service.monitor is not None else {"status": "off"})
