"""Every error the server sends has one shape: ``{"error": {"message", "type", "param"}}``.

It is the OpenAI error shape, so the generation endpoints and their clients share it, and it
names the offending field in ``param`` (``texts[3]``). Starlette's own errors (404, 405) and
FastAPI's validation errors are rewritten into it; anything unexpected becomes a logged 500
that reveals no internals.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("lmkernel.serve")

_TYPES = {400: "invalid_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
          405: "method_not_allowed", 408: "timeout", 413: "too_large", 431: "too_large", 422: "invalid_request",
          429: "rate_limited", 503: "unavailable",
          499: "client_closed", 504: "timeout"}


class ApiError(Exception):
    """An HTTP error for the client: status, message, the field at fault, extra headers."""

    def __init__(self, status: int, message: str, *, param: str | None = None, type_: str | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.type = type_ or _TYPES.get(status, "error")
        self.headers = headers


def error_response(err: ApiError) -> JSONResponse:
    body = {"error": {"message": err.message, "type": err.type, "param": err.param}}
    return JSONResponse(body, status_code=err.status, headers=err.headers)


def field_path(loc: Sequence[Any]) -> str:
    """``("body", "texts", 3)`` -> ``texts[3]``: the field as the client wrote it."""
    out = ""
    for part in loc:
        if part == "body" and not out:
            continue
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "body"


def validation_error(errors: Sequence[dict[str, Any]]) -> ApiError:
    """A 422 naming the first bad field, with the others counted (pydantic's list, made readable)."""
    first = errors[0]
    param = field_path(first.get("loc", ()))
    more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
    msg = str(first.get("msg", "invalid value")).removeprefix("Value error, ")
    return ApiError(422, f"{param}: {msg}{more}", param=param)


def install_error_handlers(app: FastAPI) -> None:
    """Route every exception type a request can raise to the one error shape."""

    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc)

    async def starlette_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error_response(ApiError(exc.status_code, str(exc.detail), headers=getattr(exc, "headers", None)))

    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(validation_error(exc.errors()))

    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(ApiError(500, "internal error; the server log has the details", type_="internal"))

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(StarletteHTTPException, starlette_error)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(Exception, unexpected)
