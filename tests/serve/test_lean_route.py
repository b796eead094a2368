"""LeanRoute (serve/routes/lean.py): the inference routes' handler answers as FastAPI's own would."""

from __future__ import annotations

import pytest
from fastapi import APIRouter, FastAPI, Request
from fastapi.testclient import TestClient
from pydantic import BaseModel

from lmkernel.serve.http_errors import ApiError, install_error_handlers
from lmkernel.serve.routes.lean import LeanRoute


class Answer(BaseModel):
    label: str
    scores: dict[str, float]
    tokens: int | None = None


def app_with(route_class) -> FastAPI:
    router = APIRouter(route_class=route_class)

    @router.post("/answer", response_model=Answer)
    async def answer(request: Request) -> Answer:
        body = await request.json()
        if body.get("fail"):
            raise ApiError(413, "too long", param="texts[0]")
        if body.get("wrong"):
            return {"label": "x"}  # type: ignore[return-value]
        return Answer(label="正面 positive", scores={"正面": 0.1 + 0.2, "neg": 1e-7})

    app = FastAPI()
    install_error_handlers(app)
    app.include_router(router)
    return app


def test_lean_route_answers_like_fastapis_handler_and_keeps_the_schema():
    from fastapi.routing import APIRoute

    lean, plain = TestClient(app_with(LeanRoute)), TestClient(app_with(APIRoute))
    for body in ({}, {"fail": True}):
        a, b = lean.post("/answer", json=body), plain.post("/answer", json=body)
        assert a.status_code == b.status_code and a.json() == b.json()
        assert a.headers["content-type"] == b.headers["content-type"]
    assert lean.post("/answer", json={}).json()["label"] == "正面 positive"
    assert lean.get("/openapi.json").json()["paths"] == plain.get("/openapi.json").json()["paths"]


def test_an_endpoint_that_returns_no_model_is_a_loud_bug():
    client = TestClient(app_with(LeanRoute), raise_server_exceptions=True)
    with pytest.raises(TypeError, match="not a pydantic model"):
        client.post("/answer", json={"wrong": True})
