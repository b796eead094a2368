"""Chat completions grounded in the knowledge index (a server started with ``--knowledge IDX``).

The last user message is the question: ``knowledge.answer.prepare`` retrieves its passages and builds the
numbered-passage prompt (the same one ``lmkernel ask`` builds), dropping passages until it fits the
model's context. Below ``--knowledge-min-score`` the reply says it does not know, in the question's
language, without running the model. Otherwise the engine answers as for any chat completion, and
the response adds ``citations`` (the passages the answer's ``[n]`` markers name) and ``grounded``; a
stream carries them in the chunk with the finish reason.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from ...errors import LmkError
from ...generation import has_chat_template
from ...knowledge.answer import PLAIN_STOPS, Answer, Grounding, finish, plain_prompt
from ..deps import Service, ready_service
from ..generation.engine import Delta, Done
from ..generation.schemas import (
    AssistantMessage,
    ChatChoice,
    ChatCompletionRequest,
    ChatMessage,
    GenUsage,
    GroundedChatCompletion,
    KnowledgeOptions,
)
from ..http_errors import ApiError
from ..limits import parse_body, read_body
from ..schemas import json_body
from .generate import ERRORS, SSE, _collect, _openai_meta, _start, _stream, _usage, _wanted, chat_chunker
from .knowledge import knowledge_error

qa_router = APIRouter(prefix="/v1", tags=["knowledge"])  # a qa run served with --knowledge


def _question(messages: list[ChatMessage]) -> tuple[str, list[dict[str, str]]]:
    """(the last user message, the turns before it) of a chat whose last turn must be the user's."""
    last = messages[-1]
    if last.role != "user":
        raise ApiError(422, "messages: on a server with --knowledge the last message must be the user's question",
                       param=f"messages[{len(messages) - 1}]")
    return last.text(), [{"role": m.role, "content": m.text()} for m in messages[:-1]]


def _chat(messages: list[dict[str, str]]) -> list[ChatMessage]:
    return [ChatMessage.model_construct(role=m["role"], content=m["content"], name=None) for m in messages]


def _retrieval(knowledge: Any, opts: KnowledgeOptions) -> dict[str, Any]:
    """The search settings of a request, the server's defaults where it gives none."""
    return {"k": knowledge.k if opts.k is None else opts.k, "mode": opts.mode, "filters": opts.filters,
            "min_score": knowledge.min_score if opts.min_score is None else opts.min_score,
            "min_bm25": knowledge.min_bm25 if opts.min_bm25 is None else opts.min_bm25}


def _cited(grounding: Grounding, text: str) -> dict[str, Any]:
    answer = finish(grounding, text)
    return {"citations": [c.to_json() for c in answer.citations], "grounded": answer.grounded}


async def grounded_chat(request: Request, service: Service, body: ChatCompletionRequest, started: float) -> Any:
    """The grounded answer to ``body`` (see the module docstring).

    Raises:
        ApiError: 422 for a chat not ending with a user turn, an empty question, k out of range or a bad
            filter; the generation errors of /v1/chat/completions otherwise.
    """
    knowledge = service.knowledge
    opts = body.knowledge or KnowledgeOptions()
    question, history = _question(body.messages)
    predictor = service.predictor
    prompt: dict[str, list[int]] = {}

    chat = has_chat_template(predictor.tokenizer) and getattr(predictor, "style", None) is not None \
        and predictor.style.chat

    def fits(messages: list[dict[str, str]]) -> bool:
        try:  # a model without a chat template continues the same turns as plain text (as `lmkernel ask` does)
            prompt["ids"] = (predictor.encode_chat(_chat(messages), False) if chat
                             else predictor.encode_prompt(plain_prompt(messages), False, "messages", True))
        except ApiError as e:
            if e.status == 413:
                return False
            raise
        return True

    try:
        grounding = await run_in_threadpool(knowledge.prepare, question, history=history, fits=fits,
                                            **_retrieval(knowledge, opts))
    except LmkError as e:
        raise knowledge_error(e) from e
    meta = _openai_meta(service, "chatcmpl")
    if not grounding.known:
        return _fixed_reply(meta, body, finish(grounding, ""))
    if not chat:  # a plain LM would go on with a question of its own
        body = body.model_copy(update={"stop": [*body.stop_strings(), *PLAIN_STOPS]})
    job = _start(service, prompt["ids"], body, *_wanted(body), started)
    if body.stream:
        return await _stream(job, chat_chunker(meta, body, final=lambda done: _cited(grounding, done.text)))
    done = await _collect(request, job)
    return _json(GroundedChatCompletion(**meta, usage=_usage(done), **_cited(grounding, done.text), choices=[
        ChatChoice(message=AssistantMessage(content=done.text), finish_reason=done.finish_reason)]))


def _json(body: GroundedChatCompletion) -> JSONResponse:
    """Sent as is: the route's response_model (ChatCompletion) would drop ``citations`` and ``grounded``."""
    return JSONResponse(body.model_dump())


def _fixed_reply(meta: dict[str, Any], body: ChatCompletionRequest, answer: Answer) -> Any:
    """An answer made without the engine ("don't know", an extractive span): a whole completion, or the
    same as a short stream."""
    cited = {"citations": [c.to_json() for c in answer.citations], "grounded": answer.grounded}
    if not body.stream:
        return _json(GroundedChatCompletion(**meta, usage=GenUsage(prompt_tokens=0, completion_tokens=0,
                                                                   total_tokens=0), **cited,
                                            choices=[ChatChoice(message=AssistantMessage(content=answer.answer),
                                                                finish_reason="stop")]))
    chunks = chat_chunker(meta, body, final=lambda done: cited)
    events = chunks(Delta(answer.answer, 0)) + chunks(Done("stop", 0, 0, answer.answer))

    async def stream() -> AsyncIterator[str]:
        for chunk in events:
            yield f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n"
        yield "data: [DONE]\n\n"

    return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


@qa_router.post("/chat/completions", response_model=GroundedChatCompletion,
                openapi_extra=json_body(ChatCompletionRequest), responses={**ERRORS, 200: SSE},
                summary="Chat completion answered by extractive QA over the knowledge index (OpenAI-compatible)",
                description="The answer is the best span of the served QA model over the retrieved passages, "
                "cited; below --knowledge-min-score, or when no passage holds an answer, it says it does not know.")
async def qa_chat_completions(request: Request) -> Any:
    service = ready_service(request)
    body = parse_body(await read_body(request, service.settings.max_body_bytes), ChatCompletionRequest)
    knowledge, opts = service.knowledge, body.knowledge or KnowledgeOptions()
    question, _ = _question(body.messages)
    try:
        answer = await run_in_threadpool(knowledge.extract, question, **_retrieval(knowledge, opts))
    except LmkError as e:
        raise knowledge_error(e) from e
    return _fixed_reply(_openai_meta(service, "chatcmpl"), body, answer)
