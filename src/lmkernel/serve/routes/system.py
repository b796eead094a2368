"""Routes every server has whatever its task: models, liveness, readiness, metrics.

/healthz says the process answers (200 while loading, too; 503 once the model failed to load, as
restarting is the fix); /readyz says it can serve (503
until the model is loaded and has run a warm-up batch), so a load balancer sends traffic only
to warm replicas. /metrics stays open like the probes: scrapers rarely carry API keys.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from ..deps import Caller, ServiceDep
from ..schemas import Health, ModelInfo, ModelList, Readiness, error_responses

router = APIRouter(tags=["system"])


@router.get("/v1/models", response_model=ModelList, responses=error_responses(401, 429),
            summary="The served model")
async def models(service: ServiceDep, _: Caller) -> ModelList:
    data = [ModelInfo(**service.predictor.info())] if service.predictor is not None else []
    return ModelList(data=data)


@router.get("/healthz", response_model=Health, response_model_exclude_none=True, responses={503: {"model": Health}},
            summary="Liveness")
async def healthz(service: ServiceDep) -> Any:
    if service.status == "failed":
        return JSONResponse(Health(status="failed", detail=service.detail).model_dump(), status_code=503)
    return Health()


@router.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness}}, summary="Readiness")
async def readyz(service: ServiceDep) -> JSONResponse:
    body = Readiness(status=service.status, detail=service.detail)
    return JSONResponse(body.model_dump(), status_code=200 if service.status == "ready" else 503)


@router.get("/metrics", response_class=Response, summary="Prometheus metrics",
            responses={200: {"content": {"text/plain": {}}}})
async def metrics(service: ServiceDep) -> Response:
    from prometheus_client import CONTENT_TYPE_LATEST

    return Response(service.metrics.render(), media_type=CONTENT_TYPE_LATEST)
