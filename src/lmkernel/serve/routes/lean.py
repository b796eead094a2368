"""A route class for the inference endpoints: FastAPI documents them, our code runs them.

``/v1/classify`` and ``/v1/entities`` take only the ``Request`` (they parse and check bodies
themselves, ``limits.parse_body``) and return a pydantic response model. FastAPI's own handler
would still solve dependencies, read the query string and cookies, and validate and re-encode the
returned model on every call: with the model replaced by an instant one, the event loop spent
measurably more CPU per /v1/classify request under FastAPI's handler than under this one
(bench/experiments/event_loop.py), and the event loop runs on the same cores as the model.
The route keeps everything FastAPI builds from the endpoint's signature (the OpenAPI schema, the
path, the methods); only the per-request handler is ours: call the endpoint with the request,
write the returned model as JSON with pydantic's encoder. Exceptions propagate exactly as from
FastAPI's handler, to the app's error handlers.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel


class LeanRoute(APIRoute):
    """An ``APIRoute`` for endpoints of the form ``async def f(request: Request) -> BaseModel | Response``."""

    def get_route_handler(self) -> Callable[[Request], Awaitable[Response]]:
        endpoint = self.endpoint
        status = self.status_code or 200

        async def handler(request: Request) -> Response:
            result: Any = await endpoint(request)
            if isinstance(result, Response):
                return result
            if not isinstance(result, BaseModel):  # a programming error, not a client's
                raise TypeError(f"{endpoint.__name__} returned {type(result).__name__}, not a pydantic model")
            return Response(result.model_dump_json(), status_code=status, media_type="application/json")

        return handler
