"""`lmkernel app serve`: the support bot over HTTP, behind the same limits, keys and metrics as model servers.

The bot's replies go through the server's dynamic batcher like any model's (one worker thread, a bounded
queue, the request deadline), so the event loop never runs a model. Routes:

- ``POST /v1/chat/completions``: OpenAI-compatible; the bot answers the last user message; the reply's
  ``kind`` (answer, handoff, unknown, out_of_scope), intent and citations come in an ``lmkernel`` field that
  OpenAI clients keep in ``model_extra``; ``stream: true`` sends the reply as one chunk.
- ``POST /v1/app/respond`` ``{"message": "..."}``: the reply as ``lmkernel app ask --json`` prints it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from ..serve.deps import ready_service
from ..serve.generation.engine import Delta, Done
from ..serve.generation.schemas import ChatCompletionRequest
from ..serve.http_errors import ApiError
from ..serve.limits import parse_body, read_body
from ..serve.routes.generate import _openai_meta, chat_chunker
from ..serve.schemas import error_responses, json_body

router = APIRouter(prefix="/v1", tags=["application"])
ERRORS = error_responses(401, 413, 422, 429, 503, 504)


class RespondRequest(BaseModel):
    message: str = Field(min_length=1, description="The customer's message.")


class BotPredictor:
    """The bot as a predictor: items are messages, results are replies (run in the batcher's thread)."""

    task: ClassVar[str] = "support"
    kind = "batch"
    unpadded = True  # messages are not grouped by token length

    def __init__(self, bot: Any, name: str, max_input_chars: int = 4000):
        self.bot, self.name = bot, name
        self.max_input_tokens = max_input_chars  # shown in /v1/models: messages are bounded in characters

    def info(self) -> dict[str, Any]:
        return {"id": self.name, "task": "support", "max_input_tokens": self.max_input_tokens}

    def __call__(self, items: list[str]) -> list[dict[str, Any]]:
        return [self.bot.respond(message).to_json() for message in items]

    def setup_thread(self) -> None:
        pass

    def warm_up(self) -> None:
        self.bot.respond("hello")  # loads the embedder's weights into memory before /readyz turns 200


def _message(text: str, limit: int) -> str:
    if not text.strip():
        raise ApiError(422, "the message is empty", param="messages")
    if len(text) > limit:
        raise ApiError(413, f"the message has {len(text)} characters; the server takes {limit} at most",
                       param="messages")
    return text


def _last_user(req: ChatCompletionRequest) -> str:
    for m in reversed(req.messages):
        if m.role == "user":
            return m.text()
    raise ApiError(422, "the chat has no user message", param="messages")


@router.post("/app/respond", responses=ERRORS, openapi_extra=json_body(RespondRequest),
             summary="The bot's reply to one message", description="kind, text, lang, intent, score, citations.")
async def respond(request: Request) -> dict[str, Any]:
    service = ready_service(request)
    body = parse_body(await read_body(request, service.settings.max_body_bytes), RespondRequest)
    message = _message(body.message, service.predictor.max_input_tokens)
    return (await service.infer([message]))[0]


@router.post("/chat/completions", responses=ERRORS, openapi_extra=json_body(ChatCompletionRequest),
             summary="OpenAI-compatible chat", description="The bot answers the last user message; its decision "
             "and citations are in the `lmkernel` field.")
async def chat(request: Request) -> Any:
    service = ready_service(request)
    body = parse_body(await read_body(request, service.settings.max_body_bytes), ChatCompletionRequest)
    message = _message(_last_user(body), service.predictor.max_input_tokens)
    reply = (await service.infer([message]))[0]
    meta = _openai_meta(service, "chatcmpl")
    extra = {k: reply[k] for k in ("kind", "lang", "intent", "intent_score", "score", "citations")}
    if not body.stream:
        usage = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
        return {**meta, "object": "chat.completion", "usage": usage, "lmkernel": extra,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": reply["text"]},
                             "finish_reason": "stop", "logprobs": None}]}
    chunks = chat_chunker(meta, body, final=lambda done: {"lmkernel": extra})  # the engine's chunk shapes
    events = chunks(Delta(reply["text"], 0)) + chunks(Done("stop", 0, 0, reply["text"]))

    def stream():
        for chunk in events:
            yield f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n"
        yield "data: [DONE]\n\n"

    return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


def create_bot_app(path: str | Path, settings: Any, bot: Any = None):
    """The FastAPI app serving the application at ``path`` (``bot``: an already loaded one, for tests)."""
    from ..serve.app import create_app
    from .support import SupportBot

    name = Path(path).resolve().name

    def load() -> BotPredictor:
        return BotPredictor(bot if bot is not None else SupportBot.load(path), name)

    return create_app(settings, task="support", load=load, router=router)


def serve_app(path: str | Path, *, host: str, port: int, settings: Any, access_log: bool = False) -> None:
    """Serve the application until SIGTERM / Ctrl-C."""
    import dataclasses
    import logging

    from ..serve.server import build_server
    from .support import read_app

    read_app(Path(path))  # not an application directory: an error now, not a server that never gets ready
    logging.basicConfig(level=logging.INFO, format="%(levelname)s:     %(message)s")
    if settings.allowed_hosts is None:
        from ..serve.guards import default_allowed_hosts

        settings = dataclasses.replace(settings, allowed_hosts=default_allowed_hosts(host))
    build_server(create_bot_app(path, settings), host=host, port=port, settings=settings,
                 access_log=access_log).run()
