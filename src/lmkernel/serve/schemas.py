"""Request and response bodies, one family per endpoint (``ClassifyRequest``/``ClassifyResponse``).

Requests are strict (no "1" for true, no 1 for "1") and reject unknown keys, so a typo such as
``"truncation": true`` is a 422 naming the key instead of being silently ignored.
"""

from __future__ import annotations

import unicodedata
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Cn", "Zs", "Zl", "Zp"})  # controls, format, unassigned, spaces
_BLANK_LETTERS = frozenset("\u115f\u1160\u3164\uffa0\u2800")  # Hangul fillers, braille blank: drawn as nothing


def _visible(ch: str) -> bool:
    return not ch.isspace() and ch not in _BLANK_LETTERS and unicodedata.category(ch) not in _INVISIBLE_CATEGORIES


def _usable_text(text: str) -> str:
    if not any(map(_visible, text)):  # "\u0000" or "\u200b" alone would get a label for nothing
        raise ValueError("empty text; every text needs at least one visible character (not only spaces, "
                         "controls or zero-width characters)")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:  # a lone surrogate such as "\ud800" in the JSON
        raise ValueError(f"unpaired surrogate at character {e.start}") from e
    return text


Text = Annotated[str, AfterValidator(_usable_text)]


class ClassifyRequest(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid",
                              json_schema_extra={"examples": [{"texts": ["great film", "太差了"]}]})

    texts: list[Text] = Field(min_length=1, description="Texts to classify (at most --max-texts per request).")
    truncate: bool = Field(False, description="Cut texts longer than the input-token limit instead of "
                           "rejecting the request with 413.")


class Classification(BaseModel):
    label: str = Field(description="The most probable label.")
    score: float = Field(description="Its probability.")
    probabilities: dict[str, float] = Field(description="Probability of every label, in the model's label order.")
    ood: bool | None = Field(None, description="Out-of-distribution: ood_score above the threshold calibrated on "
                             "validation at training time (null: the run has no trust profile).")
    ood_score: float | None = Field(None, description="The trust profile's out-of-distribution score (higher = "
                                    "further from the training data).")
    low_confidence: bool | None = Field(None, description="score below the low-confidence threshold calibrated on "
                                        "validation (null: the run has no trust profile).")


class Usage(BaseModel):
    input_tokens: int = Field(description="Tokens the model read for this request (after any truncation).")


class ClassifyResponse(BaseModel):
    model: str
    results: list[Classification] = Field(description="One entry per input text, in order.")
    usage: Usage


class EntitiesRequest(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid",
                              json_schema_extra={"examples": [{"texts": ["Angela Merkel visited Paris."]}]})

    texts: list[Text] = Field(min_length=1, description="Texts to tag (at most --max-texts per request).")
    truncate: bool = Field(False, description="Cut texts longer than the input-token limit instead of "
                           "rejecting the request with 413.")


class Entity(BaseModel):
    type: str = Field(description="Entity type, e.g. PER, LOC, ORG.")
    text: str = Field(description="The entity as it appears in the text: text[start:end].")
    start: int = Field(description="Character offset of the first character.")
    end: int = Field(description="Character offset after the last character.")
    score: float = Field(description="Mean probability of the entity's words.")


class EntitiesResult(BaseModel):
    entities: list[Entity]


class EntitiesResponse(BaseModel):
    model: str
    results: list[EntitiesResult] = Field(description="One entry per input text, in order.")
    usage: Usage


class ModelInfo(BaseModel):
    id: str
    object: Literal["model"] = "model"
    task: str
    labels: list[str] | None = None
    base_model: str | None = None
    max_input_tokens: int


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelInfo]


class Health(BaseModel):
    status: Literal["ok", "failed"] = "ok"
    detail: str | None = Field(None, description="Why the model failed to load (then 503).")


class Readiness(BaseModel):
    status: Literal["loading", "ready", "failed", "stopping"]
    detail: str | None = None


class ErrorBody(BaseModel):
    message: str
    type: str
    param: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorBody


BODY_MODELS: dict[str, type[BaseModel]] = {}  # request bodies named in routes, added to the OpenAPI components


def json_body(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` declaring a body we parse ourselves (see limits.parse_body), so the
    schema still documents it, by name (``#/components/schemas/<Model>``; see ``add_body_schemas``)."""
    BODY_MODELS[model.__name__] = model
    ref = {"$ref": f"#/components/schemas/{model.__name__}"}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": ref}}}}


def add_body_schemas(spec: dict[str, Any]) -> dict[str, Any]:
    """Put the request models that ``spec``'s paths refer to (and the models they nest) into its components."""
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    for path in spec.get("paths", {}).values():
        for op in path.values():
            ref = (op.get("requestBody", {}).get("content", {}).get("application/json", {})
                   .get("schema", {}).get("$ref", ""))
            model = BODY_MODELS.get(ref.rsplit("/", 1)[-1])
            if model is not None:
                full = model.model_json_schema(ref_template="#/components/schemas/{model}")
                schemas.update(full.pop("$defs", {}))
                schemas[model.__name__] = full
    return spec


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` entry listing the error statuses a route can answer with."""
    return {s: {"model": ErrorResponse} for s in statuses}
