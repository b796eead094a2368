"""Monitor: a running ``lmkernel serve``'s ``GET /v1/monitor``, fetched by the console server so the page
talks to nothing but the console (the server's key travels in the request body, never in a URL)."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from ..serve.http_errors import ApiError
from .app import Console, authorized
from .served import open_server, server_request

router = APIRouter()
TIMEOUT_S = 5.0


class MonitorIn(BaseModel):
    url: str | None = Field(None, max_length=500, description="the server's base URL, e.g. http://127.0.0.1:8000 "
                            "(default: console --server)")
    key: str | None = Field(None, max_length=500)


@router.post("/monitor")
def monitor(body: MonitorIn, console: Console = Depends(authorized)) -> dict[str, Any]:
    request = server_request(console, body.url, body.key, "/v1/monitor")
    response = open_server(request, timeout=TIMEOUT_S)
    with response:
        if response.status != 200:
            raise ApiError(502, f"the server answered {response.status} on /v1/monitor", param="url")
        try:
            data = json.loads(response.read(2_000_000))
        except (OSError, ValueError) as e:
            raise ApiError(502, f"cannot read {request.full_url}: {e}", param="url") from e
    return {"url": request.full_url, "monitor": data}
