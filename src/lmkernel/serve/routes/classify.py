"""POST /v1/classify: labels and probabilities for a list of texts.

decode (limits.parse_body) -> encode (tokenize, 413 on too many texts or tokens) -> predict (the
batcher, off the event loop) -> respond. Short requests are tokenized on the event loop, where
a thread hop would cost more than the fast tokenizer; long ones go to a thread so that one big
body cannot stall every other connection.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from ..deps import ReadyService
from ..http_errors import ApiError
from ..limits import parse_body, read_body
from ..schemas import ClassifyRequest, ClassifyResponse, Usage, error_responses, json_body

router = APIRouter(prefix="/v1", tags=["classification"])

INLINE_TOKENIZE_CHARS = 4096  # below this, tokenizing takes well under a millisecond


@router.post("/classify", response_model=ClassifyResponse, openapi_extra=json_body(ClassifyRequest),
             responses=error_responses(401, 413, 422, 429, 503, 504),
             summary="Classify texts", description="One label, its score and every label's probability per text.")
async def classify(request: Request, service: ReadyService) -> ClassifyResponse:
    settings = service.settings
    body = parse_body(await read_body(request, settings.max_body_bytes), ClassifyRequest)
    if len(body.texts) > settings.max_texts:
        raise ApiError(413, f"{len(body.texts)} texts in one request; the limit is {settings.max_texts} "
                       "(--max-texts): split the request", param="texts")
    predictor = service.predictor
    if sum(map(len, body.texts)) <= INLINE_TOKENIZE_CHARS:
        ids = predictor.encode(body.texts, body.truncate)
    else:
        ids = await run_in_threadpool(predictor.encode, body.texts, body.truncate)
    tokens = sum(map(len, ids))
    service.metrics.input_tokens.inc(tokens)
    results = await service.infer(ids)
    return ClassifyResponse(model=predictor.name, results=results, usage=Usage(input_tokens=tokens))
