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


def wait_process_ready(client: httpx.Client, proc, timeout: float = 60.0) -> None:
    """Until a server subprocess accepts connections (or exits), then until it is ready."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            client.get("/healthz")
            break
        except httpx.TransportError:
            time.sleep(0.1)
    wait_ready(client, timeout=timeout)


@contextlib.contextmanager
def serving(load, task: str = "classification", **settings: Any) -> Iterator[TestClient]:
    """A TestClient (lifespan running) around an app whose predictor comes from ``load``; waits for ready."""
    app = create_app(ServeSettings(**settings), task=task, load=load)
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


def load_chat(run):
    """``lmkernel.load(run)`` when task ``chat`` is registered; until then the same object by hand."""
    import json
    import types
    from pathlib import Path

    from lmkernel.tasks import task_names

    if "chat" in task_names():
        import lmkernel

        return lmkernel.load(run)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model_dir = Path(run) / "model"
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    card = json.loads((model_dir / "lmkernel.json").read_text(encoding="utf-8"))
    return types.SimpleNamespace(model=model, tokenizer=AutoTokenizer.from_pretrained(model_dir), card=card,
                                 path=model_dir)


@contextlib.contextmanager
def chat_serving(model, **settings: Any) -> Iterator[TestClient]:
    """A TestClient on a chat app around ``model`` (a loaded chat artifact)."""
    from lmkernel.serve.generation.predictor import GenerationPredictor

    app = create_app(ServeSettings(**settings), task="chat", load=lambda: GenerationPredictor(model))
    with TestClient(app) as client:
        wait_ready(client)
        yield client


@contextlib.contextmanager
def live_server(app: FastAPI) -> Iterator[str]:
    """``app`` under a real uvicorn on a free loopback port, in a thread; yields its base URL."""
    import socket
    import threading

    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base) as client:
            deadline = time.monotonic() + 30
            while not server.started and time.monotonic() < deadline:
                time.sleep(0.02)
            wait_ready(client)
        yield base
    finally:
        server.should_exit = True
        thread.join(30)
