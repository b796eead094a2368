"""What the routes share: a body of texts checked against the limits (/v1/classify, /v1/entities),
and tokenizing off the event loop when a body is long (those and the generation routes).

Short requests are tokenized on the event loop, where a thread hop would cost more than the fast
tokenizer; long ones go to a thread so that one big body cannot stall every other connection.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import Request
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from ..http_errors import ApiError
from ..limits import parse_body, read_body

INLINE_TOKENIZE_CHARS = 4096  # below this, tokenizing takes well under a millisecond

Body = TypeVar("Body", bound=BaseModel)
T = TypeVar("T")


async def texts_body(request: Request, settings, schema: type[Body]) -> Body:
    """The decoded body (422 on bad JSON or types), 413 when it holds more texts than --max-texts or
    admission control finds it too slow for the deadline even before tokenizing it."""
    body = parse_body(await read_body(request, settings.max_body_bytes), schema)
    if len(body.texts) > settings.max_texts:
        raise ApiError(413, f"{len(body.texts)} texts in one request; the limit is {settings.max_texts} "
                       "(--max-texts): split the request", param="texts")
    service = request.app.state.service
    if service.admission is not None and service.predictor is not None:
        cap = service.predictor.max_input_tokens
        await tokenize(sum(map(len, body.texts)), service.admission.check_texts, body.texts, cap)
    return body


async def tokenize(chars: int, fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` on the event loop for a body of ``chars`` characters or less, else in a thread."""
    return fn(*args) if chars <= INLINE_TOKENIZE_CHARS else await run_in_threadpool(fn, *args)
