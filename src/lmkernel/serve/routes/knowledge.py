"""POST /v1/embeddings (OpenAI-compatible) and POST /v1/search (the knowledge index).

/v1/embeddings is served when the server has an embedding model: the index's (``--knowledge``), one
named by ``--embedder``, or the served artifact itself when it is a run of the ``embedding`` task (then
through the dynamic batcher). The official ``openai`` client's ``embeddings.create`` works unchanged,
including its default ``encoding_format: "base64"`` (little-endian float32, as OpenAI sends).
"""

from __future__ import annotations

import base64
from typing import Any, Literal

import numpy as np
from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.concurrency import run_in_threadpool

from ...errors import LmkError
from ...knowledge.answer import MAX_K, MODES, check_query
from ..deps import Service, ready_service
from ..http_errors import ApiError
from ..limits import parse_body, read_body
from ..schemas import error_responses, json_body
from .lean import LeanRoute

embeddings_router = APIRouter(prefix="/v1", tags=["knowledge"], route_class=LeanRoute)
search_router = APIRouter(prefix="/v1", tags=["knowledge"], route_class=LeanRoute)
router = embeddings_router  # what an embedding-task artifact serves (TaskInfo.serving)


class EmbeddingsRequest(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", json_schema_extra={"examples": [
        {"model": "minilm", "input": ["How do I reset my password?", "退货政策"]}]})

    input: Any = Field(description="A text or a list of texts (token-id arrays are not accepted).")
    model: str | None = Field(None, description="Accepted and echoed; the server embeds with its one model.")
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(None, description="Only the model's own dimension is accepted.")
    user: str | None = None

    @field_validator("input")
    @classmethod
    def _texts(cls, value: Any) -> list[str]:
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not items:
            raise ValueError("send a text or a non-empty list of texts")
        if any(isinstance(x, (int, list)) for x in items):
            raise ValueError("token-id input is not supported by this server; send the texts themselves")
        for i, x in enumerate(items):
            if not isinstance(x, str):
                raise ValueError(f"item {i} is {type(x).__name__}, not a text")
            if not x.strip():
                raise ValueError(f"item {i} is empty; every text needs at least one visible character")
        return items


class Embedding(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str


class EmbeddingUsage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class EmbeddingsResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[Embedding]
    model: str
    usage: EmbeddingUsage


def _vector(v: np.ndarray, fmt: str) -> list[float] | str:
    if fmt == "base64":
        return base64.b64encode(np.asarray(v, dtype="<f4").tobytes()).decode("ascii")
    return np.asarray(v, dtype=np.float32).tolist()


@embeddings_router.post("/embeddings", response_model=EmbeddingsResponse, openapi_extra=json_body(EmbeddingsRequest),
                        responses=error_responses(401, 404, 413, 422, 429, 503, 504),
                        summary="Embeddings (OpenAI-compatible)",
                        description="Unit-length sentence vectors; `openai.OpenAI(base_url=.../v1).embeddings.create` "
                        "works unchanged.")
async def embeddings(request: Request) -> EmbeddingsResponse:
    service = ready_service(request)
    body = parse_body(await read_body(request, service.settings.max_body_bytes), EmbeddingsRequest)
    texts: list[str] = body.input
    if len(texts) > service.settings.max_texts:
        raise ApiError(413, f"{len(texts)} texts in one request; the limit is {service.settings.max_texts} "
                       "(--max-texts): split the request", param="input")
    knowledge = service.knowledge if service.knowledge is not None and service.knowledge.embedder is not None \
        else None
    batched = knowledge is None and hasattr(service.predictor, "embed")
    if knowledge is None and not batched:
        raise ApiError(404, "this server has no embedding model: start it with --knowledge IDX or --embedder "
                       "RUN|NAME", param="model")
    if batched:
        tokens = await run_in_threadpool(service.predictor.tokens, texts)
        vectors = await service.infer(texts, tokens)
        name = service.predictor.name
    else:
        tokens = await run_in_threadpool(knowledge.count_tokens, texts)
        vectors = list(await run_in_threadpool(knowledge.embed, texts))
        name = knowledge.name
    dim = len(vectors[0])
    if body.dimensions is not None and body.dimensions != dim:
        raise ApiError(422, f"dimensions: this model makes {dim}-dimensional vectors and cannot shorten them; "
                       f"leave dimensions out or send {dim}", param="dimensions")
    data = [Embedding(index=i, embedding=_vector(v, body.encoding_format)) for i, v in enumerate(vectors)]
    service.metrics.input_tokens.inc(tokens)
    return EmbeddingsResponse(data=data, model=name, usage=EmbeddingUsage(prompt_tokens=tokens, total_tokens=tokens))


class SearchRequest(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", json_schema_extra={"examples": [
        {"query": "How do I reset my password?", "k": 5}]})

    query: str
    k: int = Field(5, description=f"Hits to return, 1 to {MAX_K}.")
    filters: dict[str, Any] | None = Field(None, description="Metadata filters: {key: value or [values]}.")
    mode: Literal[MODES] = "hybrid"  # type: ignore[valid-type]


class SearchHit(BaseModel):
    text: str
    score: float
    source: str
    chunk_id: str
    doc_id: str
    meta: dict[str, Any]


class SearchResponse(BaseModel):
    object: Literal["list"] = "list"
    query: str
    data: list[SearchHit]


def knowledge_error(e: LmkError) -> ApiError:
    """A user error from the index (a bad filter, an empty index) as a 422 the client can act on."""
    status = 413 if e.where == "context" else 422
    return ApiError(status, e.what + (f"; {e.fix}" if e.fix else ""), param=e.where if e.where in (
        "query", "k", "filters", "mode") else None)


def knowledge_of(service: Service) -> Any:
    if service.knowledge is None or service.knowledge.index is None:
        raise ApiError(404, "this server has no knowledge index: start it with --knowledge IDX")
    return service.knowledge


@search_router.post("/search", response_model=SearchResponse, openapi_extra=json_body(SearchRequest),
                    responses=error_responses(401, 404, 422, 429, 503), summary="Search the knowledge index",
                    description="Hybrid (BM25 + dense, fused), dense or BM25 search; the hits best first.")
async def search(request: Request) -> SearchResponse:
    service = ready_service(request)
    body = parse_body(await read_body(request, service.settings.max_body_bytes), SearchRequest)
    knowledge = knowledge_of(service)
    try:
        query = check_query(body.query, body.k, body.mode)
        hits = await run_in_threadpool(knowledge.search, query, body.k, body.filters, body.mode)
    except LmkError as e:
        raise knowledge_error(e) from e
    return SearchResponse(query=query, data=[SearchHit(**h.to_json()) for h in hits])
