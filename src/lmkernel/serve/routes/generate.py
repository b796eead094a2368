"""Generation: POST /v1/generate and the OpenAI-compatible /v1/chat/completions and /v1/completions.

decode body -> encode prompt (413 / truncate) -> submit to the continuous-batching engine (429
when its queue is full) -> either collect the whole completion (504 past the deadline, slot freed
when the client leaves) or stream server-sent events. A stream waits for its first event before
answering, so a deadline passed in the queue is still an HTTP 504; once streaming, the client
sees progress and only ``max_tokens`` bounds it. Whatever ends a request (done, deadline,
disconnect, cancelled stream) cancels it in the engine, which frees the slot before the next step.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from .. import content_guard
from ..deps import Service, ready_service
from ..generation.engine import Delta, Done, Event, Failed, GenRequest
from ..generation.sampling import SamplingParams
from ..generation.schemas import (
    AssistantMessage,
    ChatChoice,
    ChatCompletion,
    ChatCompletionRequest,
    Completion,
    CompletionChoice,
    CompletionRequest,
    GenerateRequest,
    GenerateResponse,
    GenUsage,
    Sampling,
)
from ..http_errors import ApiError
from ..limits import parse_body, read_body
from ..schemas import error_responses, json_body
from .texts import tokenize

router = APIRouter(prefix="/v1", tags=["generation"])

ERRORS = error_responses(401, 413, 422, 429, 503, 504)
SSE = {"content": {"text/event-stream": {"schema": {"type": "string", "description":
       "With stream: true, `data: <JSON chunk>` events, then `data: [DONE]`."}}}}


@dataclass(eq=False)
class Job:
    """A generation submitted for one HTTP request, and the queue its events arrive on."""

    service: Service
    req: GenRequest
    queue: asyncio.Queue
    started: float  # perf_counter at request arrival
    first_seen: bool = False

    async def next(self, timeout: float | None = None) -> Delta | Done:
        ev: Event = await asyncio.wait_for(self.queue.get(), timeout) if timeout else await self.queue.get()
        if not self.first_seen:
            self.first_seen = True
            self.service.metrics.first_token.observe(time.perf_counter() - self.started)
        if isinstance(ev, Failed):
            raise ApiError(503, "generation failed on the server; the log has the details; retry later")
        return ev

    def end(self) -> None:
        """Free the engine slot (no-op when finished) and count the tokens made."""
        self.service.engine.cancel(self.req)
        self.service.metrics.generated_tokens.inc(len(self.req.tokens))


def _usage(done: Done) -> GenUsage:
    return GenUsage(prompt_tokens=done.prompt_tokens, completion_tokens=done.completion_tokens,
                    total_tokens=done.prompt_tokens + done.completion_tokens)


def _start(service: Service, ids: list[int], body: Sampling, max_tokens: int | None, param: str,
           started: float) -> Job:
    cap = service.settings.max_new_tokens
    if max_tokens is not None and max_tokens > cap:
        raise ApiError(422, f"{param}: {max_tokens} is more than this server's limit of {cap} new tokens "
                       "(--max-new-tokens); ask for fewer", param=param)
    params = SamplingParams(
        max_new_tokens=min(max_tokens or cap, service.predictor.room(len(ids))), temperature=body.temperature,
        top_p=body.top_p, top_k=body.top_k, repetition_penalty=body.repetition_penalty,
        frequency_penalty=body.frequency_penalty, presence_penalty=body.presence_penalty, seed=body.seed,
        stop=body.stop_strings())
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()

    def sink(ev: Event) -> None:  # engine thread -> this request's event loop
        loop.call_soon_threadsafe(queue.put_nowait, ev)

    req = service.submit_generation(ids, params, sink, stream=body.stream)
    service.metrics.input_tokens.inc(len(ids))
    return Job(service, req, queue, started)


def _deadline_left(job: Job) -> float:
    return max(0.001, job.service.settings.timeout_s - (time.perf_counter() - job.started))


def _timeout(service: Service) -> ApiError:
    return ApiError(504, f"generation took longer than the server deadline of {service.settings.timeout_s:g}s "
                    "(--timeout-s); ask for fewer tokens, stream, or retry later")


async def _disconnected(request: Request) -> None:
    """Returns when the client goes away (the body has been read, so only a disconnect can come)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def _collect(request: Request, job: Job) -> Done:
    """The whole completion; 504 past the deadline; 499 (nobody reads it) when the client leaves."""

    async def run() -> Done:
        while not isinstance(ev := await job.next(), Done):
            pass
        return ev

    work, gone = asyncio.ensure_future(run()), asyncio.ensure_future(_disconnected(request))
    try:
        done, _ = await asyncio.wait({work, gone}, timeout=_deadline_left(job),
                                     return_when=asyncio.FIRST_COMPLETED)
        if work in done:
            return work.result()
        if gone in done:
            raise ApiError(499, "client closed the connection before the completion was ready")
        raise _timeout(job.service)
    finally:
        work.cancel()
        gone.cancel()
        job.end()


async def _finish(request: Request, job: Job) -> Done:
    """The whole completion, its text after the output guards (400 when they refuse it)."""
    done = await _collect(request, job)
    text = (await content_guard.acheck(job.service, [done.text], "output"))[0]
    return done if text == done.text else Done(done.finish_reason, done.prompt_tokens, done.completion_tokens, text)


async def _reply(request: Request, job: Job, chunks: Callable[[Delta | Done], list[dict[str, Any]]]) -> Any:
    """A stream; when generated text is guarded, one sent after the whole text passed the guards (a
    stream cannot take back what it sent)."""
    if not content_guard.output_guarded(job.service):
        return await _stream(job, chunks)
    done = await _finish(request, job)

    async def events() -> AsyncIterator[str]:
        for ev in (Delta(done.text, done.completion_tokens), done):
            for chunk in chunks(ev):
                yield f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n"
        yield "data: [DONE]\n\n"

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


async def _stream(job: Job, chunks: Callable[[Delta | Done], list[dict[str, Any]]]) -> StreamingResponse:
    """Server-sent events of ``chunks(event)`` per engine event, then ``data: [DONE]``."""
    try:
        first = await job.next(_deadline_left(job))
    except TimeoutError:
        job.end()
        raise _timeout(job.service) from None
    except BaseException:
        job.end()
        raise

    async def events() -> AsyncIterator[str]:
        ev: Delta | Done = first
        try:
            while True:
                for chunk in chunks(ev):
                    yield f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n"
                if isinstance(ev, Done):
                    yield "data: [DONE]\n\n"
                    return
                ev = await job.next()
        except ApiError as e:  # the model failed mid-stream: the status is sent already; say so in-band
            yield f"data: {json.dumps({'error': {'message': e.message, 'type': e.type, 'param': None}})}\n\n"
        finally:  # also on a client disconnect, which cancels this generator
            job.end()

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


# ---------------------------------------------------------------- /v1/generate

@router.post("/generate", response_model=GenerateResponse, openapi_extra=json_body(GenerateRequest),
             responses={**ERRORS, 200: SSE}, summary="Generate text",
             description="Answer a prompt or a chat as `lmkernel generate` does (the model's chat template and "
             "trained system prompt); `raw: true` continues the prompt as-is.")
async def generate(request: Request) -> Any:
    service = ready_service(request)
    started = time.perf_counter()
    body = parse_body(await read_body(request, service.settings.max_body_bytes), GenerateRequest)
    p = service.predictor
    if body.prompt is not None:
        prompt = (await content_guard.acheck(service, [body.prompt], "input"))[0]
        ids = await tokenize(len(prompt), p.encode_prompt, prompt, body.truncate, "prompt", body.raw)
    else:
        messages = await content_guard.check_messages(service, body.messages)
        ids = await tokenize(sum(len(m.text()) for m in messages), p.encode_chat, messages, body.truncate)
    job = _start(service, ids, body, body.max_new_tokens, "max_new_tokens", started)
    if body.stream:
        def chunks(ev: Delta | Done) -> list[dict[str, Any]]:
            if isinstance(ev, Delta):
                return [{"text": ev.text}]
            return [{"text": "", "finish_reason": ev.finish_reason, "usage": _usage(ev).model_dump()}]

        return await _reply(request, job, chunks)
    done = await _finish(request, job)
    return GenerateResponse(model=p.name, text=done.text, finish_reason=done.finish_reason, usage=_usage(done))


# ---------------------------------------------------------------- OpenAI: /v1/chat/completions

def _openai_meta(service: Service, prefix: str) -> dict[str, Any]:
    return {"id": f"{prefix}-{uuid.uuid4().hex[:24]}", "created": int(time.time()), "model": service.predictor.name}


def _include_usage(body: Sampling) -> bool:
    return bool(body.stream_options and body.stream_options.include_usage)


def chat_chunker(meta: dict[str, Any], body: Sampling,
                 final: Callable[[Done], dict[str, Any]] | None = None) -> Callable[[Delta | Done], list[dict]]:
    """The OpenAI ``chat.completion.chunk`` events for each engine event; ``final(done)`` adds fields to the
    chunk that carries the finish reason (grounded answers put their citations there)."""
    chunk = {**meta, "object": "chat.completion.chunk"}
    opened = False

    def chunks(ev: Delta | Done) -> list[dict[str, Any]]:
        nonlocal opened
        out = []
        if not opened:  # OpenAI's first chunk names the role
            opened = True
            out.append({**chunk, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                              "finish_reason": None, "logprobs": None}]})
        if isinstance(ev, Delta):
            out.append({**chunk, "choices": [{"index": 0, "delta": {"content": ev.text},
                                              "finish_reason": None, "logprobs": None}]})
        else:
            out.append({**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": ev.finish_reason,
                                              "logprobs": None}], **(final(ev) if final else {})})
            if _include_usage(body):
                out.append({**chunk, "choices": [], "usage": _usage(ev).model_dump()})
        return out

    return chunks


@router.post("/chat/completions", response_model=ChatCompletion, openapi_extra=json_body(ChatCompletionRequest),
             responses={**ERRORS, 200: SSE}, summary="Chat completion (OpenAI-compatible)",
             description="The OpenAI chat completions API: `openai.OpenAI(base_url=.../v1)` works unchanged. On a "
             "server with --knowledge, answers from the index's passages with `citations` (docs/serving.md).")
async def chat_completions(request: Request) -> Any:
    service = ready_service(request)
    started = time.perf_counter()
    body = parse_body(await read_body(request, service.settings.max_body_bytes), ChatCompletionRequest)
    messages = await content_guard.check_messages(service, body.messages)
    if messages != body.messages:
        body = body.model_copy(update={"messages": messages})
    if service.knowledge is not None and service.knowledge.index is not None and \
            (body.knowledge is None or body.knowledge.enabled):
        from .grounded import grounded_chat

        return await grounded_chat(request, service, body, started)
    ids = await tokenize(sum(len(m.text()) for m in messages), service.predictor.encode_chat, messages,
                         body.truncate)
    job = _start(service, ids, body, *_wanted(body), started)
    meta = _openai_meta(service, "chatcmpl")
    if body.stream:
        return await _reply(request, job, chat_chunker(meta, body))
    done = await _finish(request, job)
    return ChatCompletion(**meta, usage=_usage(done), choices=[ChatChoice(
        message=AssistantMessage(content=done.text), finish_reason=done.finish_reason)])


def _wanted(body: ChatCompletionRequest) -> tuple[int | None, str]:
    """(new tokens asked for, the field that asked)."""
    return ((body.max_completion_tokens, "max_completion_tokens") if body.max_completion_tokens
            else (body.max_tokens, "max_tokens"))


# ---------------------------------------------------------------- OpenAI: /v1/completions

@router.post("/completions", response_model=Completion, openapi_extra=json_body(CompletionRequest),
             responses={**ERRORS, 200: SSE}, summary="Text completion (OpenAI-compatible)",
             description="The OpenAI (legacy) completions API on a raw prompt.")
async def completions(request: Request) -> Any:
    service = ready_service(request)
    started = time.perf_counter()
    body = parse_body(await read_body(request, service.settings.max_body_bytes), CompletionRequest)
    prompt = (await content_guard.acheck(service, [body.prompt], "input"))[0]
    ids = await tokenize(len(prompt), service.predictor.encode_prompt, prompt, body.truncate, "prompt",
                         True)  # the OpenAI completions API continues text as-is
    job = _start(service, ids, body, body.max_tokens, "max_tokens", started)
    meta = _openai_meta(service, "cmpl")
    if body.stream:
        chunk = {**meta, "object": "text_completion"}

        def chunks(ev: Delta | Done) -> list[dict[str, Any]]:
            if isinstance(ev, Delta):
                return [{**chunk, "choices": [{"index": 0, "text": ev.text, "finish_reason": None,
                                               "logprobs": None}]}]
            out = [{**chunk, "choices": [{"index": 0, "text": "", "finish_reason": ev.finish_reason,
                                          "logprobs": None}]}]
            if _include_usage(body):
                out.append({**chunk, "choices": [], "usage": _usage(ev).model_dump()})
            return out

        return await _reply(request, job, chunks)
    done = await _finish(request, job)
    return Completion(**meta, usage=_usage(done), choices=[CompletionChoice(
        text=done.text, finish_reason=done.finish_reason)])
