"""POST /v1/qa: the answer to a question, as a span of the context given with it (qa artifacts).

decode -> encode into windows (413 for a context over the token cap unless "truncate") -> the dynamic
batcher (windows of many requests run together) -> respond with answer, score and character span.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from ..deps import ready_service
from ..limits import parse_body, read_body
from ..schemas import Text, Usage, error_responses, json_body
from .lean import LeanRoute
from .texts import tokenize

router = APIRouter(prefix="/v1", tags=["qa"], route_class=LeanRoute)


class QaRequest(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", json_schema_extra={"examples": [
        {"question": "Where is the Eiffel Tower?", "context": "The Eiffel Tower is in Paris, France."}]})

    question: Text = Field(description="The question.")
    context: Text = Field(description="The passage the answer is taken from (long ones run as overlapping windows).")
    truncate: bool = Field(False, description="Cut a context longer than the input-token limit instead of "
                           "rejecting the request with 413.")


class QaResponse(BaseModel):
    model: str
    answer: str = Field(description="context[start:end]; \"\" when the model finds no answer (then start = end = -1).")
    score: float = Field(description="Probability of the span (of no answer when answer is \"\").")
    start: int = Field(description="Character offset of the answer in the context.")
    end: int = Field(description="Character offset after the answer.")
    usage: Usage


@router.post("/qa", response_model=QaResponse, openapi_extra=json_body(QaRequest),
             responses=error_responses(401, 413, 422, 429, 503, 504),
             summary="Answer a question from a context", description="The answer span, its score and offsets.")
async def qa(request: Request) -> QaResponse:
    service = ready_service(request)
    body = parse_body(await read_body(request, service.settings.max_body_bytes), QaRequest)
    predictor = service.predictor
    encoded = await tokenize(len(body.context) + len(body.question), predictor.encode,
                             [(body.question, body.context)], body.truncate)
    tokens = sum(map(len, encoded))
    service.metrics.input_tokens.inc(tokens)
    result = (await service.infer(encoded, tokens))[0]
    return QaResponse(model=predictor.name, usage=Usage(input_tokens=tokens), **result)
