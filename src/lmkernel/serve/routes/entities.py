"""POST /v1/entities: typed entity spans (character offsets) for a list of texts (NER artifacts).

The same path as /v1/classify: decode -> check sizes and tokens (413) -> the dynamic batcher
(texts of many requests run together, grouped by length) -> respond.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from ..deps import ReadyService
from ..http_errors import ApiError
from ..limits import parse_body, read_body
from ..schemas import EntitiesRequest, EntitiesResponse, Usage, error_responses, json_body
from .classify import INLINE_TOKENIZE_CHARS

router = APIRouter(prefix="/v1", tags=["ner"])


@router.post("/entities", response_model=EntitiesResponse, openapi_extra=json_body(EntitiesRequest),
             responses=error_responses(401, 413, 422, 429, 503, 504),
             summary="Find named entities", description="Entity type, text, character span and score per entity.")
async def entities(request: Request, service: ReadyService) -> EntitiesResponse:
    settings = service.settings
    body = parse_body(await read_body(request, settings.max_body_bytes), EntitiesRequest)
    if len(body.texts) > settings.max_texts:
        raise ApiError(413, f"{len(body.texts)} texts in one request; the limit is {settings.max_texts} "
                       "(--max-texts): split the request", param="texts")
    predictor = service.predictor

    def encode() -> tuple[list[str], int]:
        texts = predictor.encode(body.texts, body.truncate)
        return texts, predictor.tokens(texts)

    if sum(map(len, body.texts)) <= INLINE_TOKENIZE_CHARS:
        texts, tokens = encode()
    else:
        texts, tokens = await run_in_threadpool(encode)
    service.metrics.input_tokens.inc(tokens)
    results = await service.infer(texts)
    return EntitiesResponse(model=predictor.name, results=results, usage=Usage(input_tokens=tokens))
