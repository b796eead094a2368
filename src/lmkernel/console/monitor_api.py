"""Monitor: a running ``lmkernel serve``'s ``GET /v1/monitor``, fetched by the console server so the page
talks to nothing but the console (the server's key travels in the request body, never in a URL)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from ..serve.http_errors import ApiError
from .app import Console, authorized

router = APIRouter()
TIMEOUT_S = 5.0


class MonitorIn(BaseModel):
    url: str = Field(min_length=1, max_length=500, description="the server's base URL, e.g. http://127.0.0.1:8000")
    key: str | None = Field(None, max_length=500)


@router.post("/monitor")
def monitor(body: MonitorIn, console: Console = Depends(authorized)) -> dict[str, Any]:
    parts = urlsplit(body.url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ApiError(422, f"not a server URL: {body.url!r}; give http://HOST:PORT", param="url")
    target = f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}/v1/monitor"
    request = urllib.request.Request(target, headers={"Authorization": f"Bearer {body.key}"} if body.key else {})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:  # noqa: S310 (scheme checked above)
            data = json.loads(response.read(2_000_000))
    except urllib.error.HTTPError as e:
        raise ApiError(502, f"the server answered {e.code} on /v1/monitor"
                       + (" (give its API key)" if e.code == 401 else ""), param="url") from e
    except (urllib.error.URLError, OSError, ValueError) as e:
        raise ApiError(502, f"cannot reach {target}: {getattr(e, 'reason', e)}", param="url") from e
    return {"url": target, "monitor": data}
