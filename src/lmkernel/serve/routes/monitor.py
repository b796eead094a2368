"""GET /v1/monitor: the monitor's windows (label shares, confidence, ood and low-confidence rates,
guard hits), drift against the model's reference, and each alert rule's state."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from ..deps import Caller, ServiceDep
from ..schemas import error_responses

router = APIRouter(tags=["system"])


@router.get("/v1/monitor", responses=error_responses(401, 429), summary="Monitoring windows, drift and alerts")
async def monitor(service: ServiceDep, _: Caller) -> dict[str, Any]:
    if service.monitor is None:
        return {"status": "off"}
    return service.monitor.snapshot()
