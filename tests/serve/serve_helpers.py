"""Helpers for the serving tests: a fake predictor and an app-in-a-TestClient context."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any, ClassVar

import httpx
from fastapi import FastAPI
from fastapi.testclient import TestClient

from lmkernel.serve.app import create_app
from lmkernel.serve.http_errors import ApiError
from lmkernel.serve.settings import ServeSettings

LABELS = ["negative", "positive"]


class FakePredictor:
    """Words as tokens; sleeps ``delay`` per batch; records every batch it ran."""

    task: ClassVar[str] = "classification"
    name = "fake"
    max_input_tokens = 8

    def __init__(self, delay: float = 0.0):
        self.delay = delay
        self.batches: list[list[list[int]]] = []

    def info(self) -> dict[str, Any]:
        return {"id": self.name, "task": self.task, "labels": LABELS, "max_input_tokens": self.max_input_tokens}

    def encode(self, texts, truncate):
        ids = [[len(w) for w in t.split()] for t in texts]
        for i, seq in enumerate(ids):
            if len(seq) > self.max_input_tokens and not truncate:
                raise ApiError(413, f"texts[{i}] too long", param=f"texts[{i}]")
        return [seq[: self.max_input_tokens] for seq in ids]

    def __call__(self, items):
        self.batches.append(items)
        time.sleep(self.delay)
        return [{"label": LABELS[len(x) % 2], "score": 1.0, "probabilities": {"negative": 0.0, "positive": 1.0}}
                for x in items]

    def setup_thread(self) -> None:
        pass

    def warm_up(self) -> None:
        pass


def wait_ready(client: TestClient | httpx.Client, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if client.get("/readyz").status_code == 200:
            return
        time.sleep(0.01)
    raise AssertionError(f"not ready after {timeout}s: {client.get('/readyz').text}")


@contextlib.contextmanager
def serving(load, **settings: Any) -> Iterator[TestClient]:
    """A TestClient (lifespan running) around an app whose predictor comes from ``load``; waits for ready."""
    app = create_app(ServeSettings(**settings), task="classification", load=load)
    with TestClient(app) as client:
        wait_ready(client)
        yield client


@contextlib.asynccontextmanager
async def async_serving(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """An async client on the app (lifespan running, model ready) for truly concurrent requests."""
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            while (await client.get("/readyz")).status_code != 200:
                await asyncio.sleep(0.01)
            yield client
