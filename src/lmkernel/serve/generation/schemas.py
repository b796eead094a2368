"""Bodies of the generation endpoints: /v1/generate (ours) and the OpenAI-compatible two.

The OpenAI request models accept the fields the official client sends for text chat and
completions (``n`` only 1, ``logprobs`` only false/0, no tools); anything else is a 422 naming the key rather than
being silently ignored. ``top_k``, ``repetition_penalty`` and ``truncate`` are extensions (the
client passes them through ``extra_body``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from ..schemas import Text


def _encodable(text: str) -> str:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise ValueError(f"unpaired surrogate at character {e.start}") from e
    return text


AnyText = Annotated[str, AfterValidator(_encodable)]  # may be empty (a chat turn, a stop list entry)
STRICT = ConfigDict(strict=True, extra="forbid")


class StreamOptions(BaseModel):
    model_config = STRICT
    include_usage: bool = Field(False, description="Send a last chunk with token usage before [DONE].")


class Sampling(BaseModel):
    """Sampling and limits shared by every generation endpoint."""

    model_config = STRICT

    temperature: float = Field(1.0, ge=0, le=2, description="0 is greedy.")
    top_p: float = Field(1.0, gt=0, le=1)
    top_k: int = Field(0, ge=0, description="Keep the k most likely tokens; 0 is off (extension).")
    repetition_penalty: float = Field(1.0, gt=0, le=10, description="transformers' repetition penalty "
                                      "over prompt and completion; 1 is off (extension).")
    frequency_penalty: float = Field(0.0, ge=-2, le=2)
    presence_penalty: float = Field(0.0, ge=-2, le=2)
    seed: int | None = Field(None, ge=0, lt=2**63, description="Same seed, same parameters: same completion.")
    stop: AnyText | list[AnyText] | None = Field(None, description="Up to 4 strings that end the completion.")
    stream: bool = Field(False, description="Server-sent events, one per text delta, then `data: [DONE]`.")
    stream_options: StreamOptions | None = None
    truncate: bool = Field(False, description="Keep the last input-token-limit tokens of a too-long prompt "
                           "instead of answering 413 (extension).")

    @model_validator(mode="after")
    def _stop_list(self) -> Sampling:
        stops = [self.stop] if isinstance(self.stop, str) else (self.stop or [])
        if len(stops) > 4:
            raise ValueError("stop: at most 4 stop strings")
        return self

    def stop_strings(self) -> tuple[str, ...]:
        return tuple(s for s in ([self.stop] if isinstance(self.stop, str) else (self.stop or [])) if s)


class OpenAIFields(Sampling):
    model: str | None = Field(None, description="Any name; the served model answers (see /v1/models).")
    max_tokens: int | None = Field(None, ge=1, description="Completion tokens at most (default: the server cap).")
    n: int = Field(1, ge=1, le=1, description="Only 1 completion per request is supported.")
    user: str | None = None
    logprobs: bool | int | None = Field(None, description="Only false, 0 or null: this server returns no "
                                        "log probabilities (OpenAI clients send false).")
    top_logprobs: int | None = Field(None, ge=0, le=0, description="Only 0 or null.")

    @model_validator(mode="after")
    def _no_logprobs(self) -> OpenAIFields:
        if self.logprobs not in (None, False, 0):
            raise ValueError(f"logprobs: {self.logprobs!r} asks for log probabilities, which this server does not "
                             "return; send logprobs: false or leave it out")
        return self


class TextPart(BaseModel):
    model_config = STRICT
    type: Literal["text"]
    text: AnyText


class ChatMessage(BaseModel):
    model_config = STRICT
    role: Literal["system", "developer", "user", "assistant"]
    content: AnyText | list[TextPart]
    name: str | None = None

    def text(self) -> str:
        return self.content if isinstance(self.content, str) else "".join(p.text for p in self.content)


class KnowledgeOptions(BaseModel):
    """Per-request retrieval settings of a grounded chat (a server with --knowledge); ``extra_body`` in openai."""

    model_config = STRICT
    enabled: bool = Field(True, description="false: a plain chat completion, without the index.")
    k: int | None = Field(None, description="Passages to retrieve (default: the server's --knowledge-k).")
    min_score: float | None = Field(None, description="Best dense cosine below which the answer is 'not known' "
                                    "(default: --knowledge-min-score).")
    min_bm25: float | None = Field(None, description="Best BM25 score below which the answer is 'not known' "
                                   "(default: --knowledge-min-bm25).")
    filters: dict[str, Any] | None = Field(None, description="Metadata filters of the search.")
    mode: Literal["hybrid", "dense", "bm25"] = "hybrid"


class ChatCompletionRequest(OpenAIFields):
    model_config = ConfigDict(strict=True, extra="forbid", json_schema_extra={"examples": [
        {"model": "chat", "messages": [{"role": "user", "content": "Hello!"}], "max_tokens": 32}]})

    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1, description="Same as max_tokens (newer name).")
    knowledge: KnowledgeOptions | None = Field(None, description="Extension: retrieval settings on a server with "
                                               "--knowledge.")


class CompletionRequest(OpenAIFields):
    model_config = ConfigDict(strict=True, extra="forbid", json_schema_extra={"examples": [
        {"model": "chat", "prompt": "Once upon a time", "max_tokens": 32}]})

    prompt: Text


class GenerateRequest(Sampling):
    model_config = ConfigDict(strict=True, extra="forbid", json_schema_extra={"examples": [
        {"prompt": "Once upon a time", "max_new_tokens": 32, "temperature": 0}]})

    prompt: Text | None = Field(None, description="A user turn, built as `lmkernel generate` builds it: the model's "
                                "chat template and trained system prompt (as-is with raw, or for a plain LM). "
                                "Exactly one of prompt, messages.")
    messages: list[ChatMessage] | None = Field(None, min_length=1, description="A chat, formatted with the "
                                               "model's chat template (its trained system prompt first unless "
                                               "the chat has one).")
    raw: bool = Field(False, description="Feed prompt as-is, without the chat template or system prompt: text to "
                      "continue.")
    max_new_tokens: int | None = Field(None, ge=1, description="Completion tokens at most (default: the server cap).")

    @model_validator(mode="after")
    def _one_input(self) -> GenerateRequest:
        if (self.prompt is None) == (self.messages is None):
            raise ValueError("send exactly one of prompt and messages")
        if self.raw and self.messages is not None:
            raise ValueError("raw applies to prompt, not to messages")
        return self


# ---------------------------------------------------------------- responses

class GenUsage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class GenerateResponse(BaseModel):
    model: str
    text: str
    finish_reason: Literal["stop", "length"]
    usage: GenUsage


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class ChatChoice(BaseModel):
    index: int = 0
    message: AssistantMessage
    finish_reason: Literal["stop", "length"]
    logprobs: None = None


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: GenUsage


class Citation(BaseModel):
    index: int = Field(description="The [n] marker the answer uses.")
    chunk_id: str
    source: str
    text: str
    doc_id: str = ""


class GroundedChatCompletion(ChatCompletion):
    """A chat completion answered from the knowledge index: the passages its [n] markers cite."""

    citations: list[Citation]
    grounded: bool = Field(description="false: the passages scored below --knowledge-min-score (or none was "
                           "found), so the reply says it does not know and no model ran.")


class CompletionChoice(BaseModel):
    index: int = 0
    text: str
    finish_reason: Literal["stop", "length"]
    logprobs: None = None


class Completion(BaseModel):
    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: GenUsage
