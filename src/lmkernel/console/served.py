"""A running ``lmkernel serve``, reached through the console: the playground's classify, tag, explain, chat and
search on a served model, and the monitor. The page talks to nothing but the console; the console forwards the
call to the server and hands back the server's own bytes (status, JSON, or the event stream as it arrives), so
an answer here is the one a direct call gets.

Only the server's answering endpoints can be reached (a fixed list); the server's key travels in the request
body, never in a URL, and a key given with ``lmkernel console --server-key-env`` goes only to ``--server``.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any, Literal
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, Field

from ..serve.http_errors import ApiError
from .app import Console, authorized

router = APIRouter()
TIMEOUT_S = 120.0  # a served model on a busy CPU answers slowly; the server's own --timeout-s still applies
MAX_BODY = 8_000_000
Endpoint = Literal["/v1/models", "/v1/classify", "/v1/explain", "/v1/entities", "/v1/search", "/v1/chat/completions"]


class ServedIn(BaseModel):
    url: str | None = Field(None, max_length=500, description="the server's base URL; default: console --server")
    key: str | None = Field(None, max_length=500, description="the server's API key, if it has keys")
    path: Endpoint
    body: dict[str, Any] | None = Field(None, description="the JSON the endpoint takes; none: a GET")


def base_url(console: Console, given: str | None) -> str:
    """``http(s)://host:port[/prefix]`` of the server: the one given, else ``console --server``.

    Raises:
        ApiError: 422 for anything but an http(s) URL, or no URL at all.
    """
    url = (given or "").strip() or console.server
    if not url:
        raise ApiError(422, "no server URL: give one (http://HOST:PORT) or start the console with --server",
                       param="url")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ApiError(422, f"not a server URL: {url!r}; give http://HOST:PORT", param="url")
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"


def server_request(console: Console, url: str | None, key: str | None, path: str,
                   body: dict[str, Any] | None = None) -> urllib.request.Request:
    """The request to the server; the console's own server key only goes to the console's ``--server``."""
    base = base_url(console, url)
    if not key and console.server_key and console.server and base == base_url(console, console.server):
        key = console.server_key
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    data = None
    if body is not None:
        data = json.dumps(body, ensure_ascii=False).encode()
        headers["Content-Type"] = "application/json"
    return urllib.request.Request(base + path, data=data, headers=headers, method="GET" if data is None else "POST")


def open_server(request: urllib.request.Request, timeout: float = TIMEOUT_S) -> Any:
    """The server's response; its refusals other than 401 come back as they are (the caller passes them on).

    Raises:
        ApiError: 502 when the server cannot be reached or refuses the key (a 401 passed on would read as the
            console asking for its own key).
    """
    try:
        return urllib.request.urlopen(request, timeout=timeout)  # noqa: S310 (scheme checked in base_url)
    except urllib.error.HTTPError as e:
        if e.code == 401:
            raise ApiError(502, f"the server answered 401 on {urlsplit(request.full_url).path}: give its API key",
                           param="key") from e
        return e  # an HTTPError is a response too: status, headers, body
    except (urllib.error.URLError, OSError, ValueError) as e:
        raise ApiError(502, f"cannot reach {request.full_url}: {getattr(e, 'reason', e)}", param="url") from e


@router.post("/served")
def served(body: ServedIn, console: Console = Depends(authorized)) -> Response:
    """The server's answer to ``body.path``: its status and JSON, or its event stream (``"stream": true``)."""
    if (body.body is None) != (body.path == "/v1/models"):
        raise ApiError(422, f"{body.path} takes " + ("no body" if body.path == "/v1/models" else "a JSON body"),
                       param="body")
    response = open_server(server_request(console, body.url, body.key, body.path, body.body))
    kind = response.headers.get("Content-Type", "application/json")
    if kind.startswith("text/event-stream"):
        return StreamingResponse(_relay(response), media_type=kind,
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
    with response:
        content = response.read(MAX_BODY)
    return Response(content, status_code=response.status, media_type=kind)


def _relay(response: Any) -> Iterator[bytes]:
    """The server's events as they come, line by line (a sync generator: Starlette runs it in a thread)."""
    with response:
        while line := response.readline(MAX_BODY):
            yield line
