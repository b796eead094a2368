"""POST /v1/entities: typed entity spans (character offsets) for a list of texts (NER artifacts).

The same path as /v1/classify: decode -> check sizes and tokens (413) -> the dynamic batcher
(texts of many requests run together, grouped by length) -> respond.
"""

from __future__ import annotations

from fastapi import APIRouter, Request

from ..deps import ready_service
from ..schemas import EntitiesRequest, EntitiesResponse, Usage, error_responses, json_body
from .lean import LeanRoute
from .texts import texts_body, tokenize

router = APIRouter(prefix="/v1", tags=["ner"], route_class=LeanRoute)


@router.post("/entities", response_model=EntitiesResponse, openapi_extra=json_body(EntitiesRequest),
             responses=error_responses(401, 413, 422, 429, 503, 504),
             summary="Find named entities", description="Entity type, text, character span and score per entity.")
async def entities(request: Request) -> EntitiesResponse:
    service = ready_service(request)
    body = await texts_body(request, service.settings, EntitiesRequest)
    predictor = service.predictor

    def encode() -> tuple[list[str], int]:
        texts = predictor.encode(body.texts, body.truncate)
        return texts, predictor.tokens(texts)

    texts, tokens = await tokenize(sum(map(len, body.texts)), encode)
    service.metrics.input_tokens.inc(tokens)
    results = await service.infer(texts, tokens)
    return EntitiesResponse(model=predictor.name, results=results, usage=Usage(input_tokens=tokens))
