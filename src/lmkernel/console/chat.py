"""Playground chat: a causal-LM run on the serving engine (``lmkernel serve``'s continuous batching), so a
reply streams here as fast as the server streams it. One engine per run, started on first use."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator
from typing import Any, Literal

from fastapi import APIRouter, Depends
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from ..errors import LmkError
from ..serve.http_errors import ApiError
from .app import Console, authorized
from .runs_api import run_path

router = APIRouter()
_lock = threading.Lock()
MAX_BATCH, MAX_QUEUE = 4, 16  # a page's chats, not a server's traffic


class Message(BaseModel):
    """A chat turn, as the serving predictor reads it (``role``, ``text()``); not serve's ChatMessage, whose
    module's import would add to the console's start."""

    role: Literal["system", "user", "assistant"]
    content: str = Field(max_length=20_000)

    def text(self) -> str:
        return self.content


class ChatIn(BaseModel):
    run: str
    messages: list[Message] = Field(min_length=1, max_length=64)
    max_new_tokens: int = Field(64, gt=0, le=1024)
    temperature: float = Field(0.0, ge=0, le=2)


def engine_for(console: Console, run: str) -> tuple[Any, Any]:
    """(predictor, started engine) of a generative run, loaded on first use.

    Raises:
        ApiError: 422 when the run cannot be loaded or its model does not generate.
    """
    path = run_path(console, run)
    with _lock:
        if run not in console.engines:
            from ..serve.routes import load_predictor

            try:
                predictor = load_predictor(path, threads=console.threads)
            except LmkError as e:
                raise ApiError(422, f"run {run!r} cannot chat: {e.what}", param="run") from e
            if getattr(predictor, "kind", None) != "generate":
                raise ApiError(422, f"run {run!r} is a {predictor.card.get('task')} model, which does not chat",
                               param="run")
            predictor.warm_up()
            engine = predictor.make_engine(max_batch=MAX_BATCH, max_queue=MAX_QUEUE)
            engine.start()
            console.engines[run] = (predictor, engine)
        return console.engines[run]


@router.post("/chat")
async def chat(body: ChatIn, console: Console = Depends(authorized)) -> StreamingResponse:
    """The reply as server-sent events: ``{"text": piece}`` per piece, then ``{"done": true, ...}``."""
    from ..serve.batcher import QueueFull
    from ..serve.generation.sampling import SamplingParams

    predictor, engine = await run_in_threadpool(engine_for, console, body.run)
    ids = predictor.encode_chat(body.messages, truncate=True)
    params = SamplingParams(max_new_tokens=min(body.max_new_tokens, predictor.room(len(ids))),
                            temperature=body.temperature)
    loop, queue = asyncio.get_running_loop(), asyncio.Queue()
    try:
        req = engine.submit(ids, params, lambda ev: loop.call_soon_threadsafe(queue.put_nowait, ev))
    except QueueFull as e:
        raise ApiError(429, "the playground is busy with other replies; retry",
                       headers={"Retry-After": str(e.retry_after)}) from e
    return StreamingResponse(_events(engine, req, queue), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


async def _events(engine: Any, req: Any, queue: asyncio.Queue) -> AsyncIterator[bytes]:
    from ..serve.generation.engine import Delta, Done, Failed

    try:
        while True:
            ev = await queue.get()
            if isinstance(ev, Failed):
                yield _sse({"error": "generation failed; the console's log has the details"})
                return
            if isinstance(ev, Delta) and ev.text:
                yield _sse({"text": ev.text})
            elif isinstance(ev, Done):
                yield _sse({"done": True, "tokens": ev.completion_tokens, "finish_reason": ev.finish_reason})
                return
    finally:  # also when the page goes away mid-reply: the slot is freed before the next step
        engine.cancel(req)


def _sse(event: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(event, ensure_ascii=False)}\n\n".encode()


def close_engines(console: Console) -> None:
    for _, engine in console.engines.values():
        engine.close(timeout=5)
