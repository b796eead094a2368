"""The application spec: one YAML file that wires trained models, a knowledge base and rules into a service.

A model spec (``lmkernel run``) trains one model; an application spec names what a product needs around it:
an intent classifier to route messages, a knowledge index to answer from, the rule for handing a customer
to a person, held-out questions to measure it on. ``lmkernel app run SPEC`` builds every part (training what
is given as a spec, indexing the documents) into one application directory; ``app ask`` and ``app serve``
answer from it. The same strict validation as model specs: unknown keys, wrong types and missing files are
errors naming the YAML key and line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, model_validator

from ..errors import LmkError
from ..specmodel import SpecModel, SpecPath


class IntentsSpec(SpecModel):
    spec: SpecPath | None = Field(None, description="A classification spec (lmkernel run) trained by `app run`.")
    run: SpecPath | None = Field(None, description="Or an intent classifier already trained (a run directory).")
    min_confidence: float = Field(0.5, ge=0, le=1, description="Below this, the intent is treated as unknown: the "
                                  "message is answered from the knowledge base if it can be, else handed off.")

    @model_validator(mode="after")
    def _one_source(self) -> IntentsSpec:
        if (self.spec is None) == (self.run is None):
            raise ValueError("give exactly one of intents.spec (train it) and intents.run (use a trained run)")
        return self


class KnowledgeSpec(SpecModel):
    docs: list[SpecPath] = Field(min_length=1, description="Documents to answer from (.txt, .md, .jsonl, .csv or "
                                 "folders), indexed by `app run`.")
    model: str | None = Field(None, description="Embedding model of the index (an alias, a folder or an embedding "
                              "run); default: chosen by the documents' language.")
    text_field: str = Field("text", description=".jsonl/.csv: the key or column holding a document's text.")
    id_field: str = Field("id", description=".jsonl/.csv: the key or column holding a document's id.")
    language_field: str | None = Field("lang", description="Metadata key naming a document's language (en, zh): "
                                       "a question is answered from documents in its own language when some match.")
    k: int = Field(3, ge=1, le=50, description="Passages retrieved per question.")
    mode: Literal["hybrid", "bm25", "dense"] = Field("hybrid", description="How passages are ranked.")


class AnswerSpec(SpecModel):
    mode: Literal["passage", "qa", "generate"] = Field(
        "passage", description="passage: answer with the best passage itself (a FAQ's answer, cited); qa: the best "
        "span an extractive QA run finds in the passages; generate: a chat model writes the answer from them.")
    qa: SpecPath | None = Field(None, description="mode qa: a run of the qa task.")
    generator: str | None = Field(None, description="mode generate: a chat run or model alias (e.g. smollm2).")
    min_score: float = Field(0.35, ge=-1, le=1, description="Below this cosine between the question and the best "
                             "passage the bot says it does not know (and offers a person) instead of answering.")
    min_bm25: float | None = Field(None, ge=0, description="For a message in a language the index's embedding "
                                   "model does not read (Chinese with minilm), whose cosine says nothing: below this "
                                   "BM25 score of the best passage the bot says it does not know (BM25 scores depend "
                                   "on the documents: choose it with `app eval`).")
    max_new_tokens: int = Field(256, ge=1, le=4096, description="mode generate: the answer's length at most.")

    @model_validator(mode="after")
    def _needs(self) -> AnswerSpec:
        if self.mode == "qa" and self.qa is None:
            raise ValueError("answer.mode qa needs answer.qa: a run of the qa task")
        if self.mode == "generate" and not self.generator:
            raise ValueError("answer.mode generate needs answer.generator: a chat run or a model alias")
        return self


class HandoffSpec(SpecModel):
    intents: list[str] = Field(default_factory=lambda: ["human"], description="Intents that go to a person at once.")
    out_of_scope: list[str] = Field(default_factory=list, description="Intents the bot does not serve: it says so "
                                    "and offers a person.")
    message_en: str = Field("I'll pass you to a colleague, who will reply shortly.",
                            description="What the bot says when it hands off, in English.")
    message_zh: str = Field("正在为您转接人工客服，请稍候。", description="The same in Chinese.")
    unknown_en: str = Field("Sorry, I don't know the answer to that. Would you like to talk to a colleague?",
                            description="What the bot says when nothing in the knowledge base answers, in English.")
    unknown_zh: str = Field("抱歉，我不知道这个问题的答案。需要为您转接人工客服吗？",
                            description="The same in Chinese.")


class EvalSpec(SpecModel):
    data: SpecPath | None = Field(None, description="Held-out questions (.jsonl: question, expect = the document id "
                                  "that answers it or null, contains = a fact the answer must hold): `app run` "
                                  "measures the bot on them.")


class AppMeta(SpecModel):
    type: Literal["support"] = Field("support", description="support: intent routing + knowledge-base answers + "
                                     "hand-off to a person.")
    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._-]+$",
                      description="The application's name (its directory under runs/ by default).")


class AppSpec(SpecModel):
    app: AppMeta
    intents: IntentsSpec | None = Field(None, description="Optional intent classifier (routing and hand-off).")
    knowledge: KnowledgeSpec
    answer: AnswerSpec = Field(default_factory=AnswerSpec)
    handoff: HandoffSpec = Field(default_factory=HandoffSpec)
    eval: EvalSpec = Field(default_factory=EvalSpec)
    output: SpecPath | None = Field(None, description="Application directory (default: runs/<app.name>).")


_PATHS = (("intents", "spec"), ("intents", "run"), ("answer", "qa"), ("eval", "data"))


def _resolve_paths(tree: dict, base: Path) -> None:
    """Relative paths in the file are relative to the file, resolved as model specs resolve theirs
    (``spec._resolve_path``: ``~`` expanded, unusable paths an error)."""
    from ..spec import _resolve_path

    for section, key in _PATHS:
        sec = tree.get(section)
        if isinstance(sec, dict) and isinstance(sec.get(key), str):
            sec[key] = _resolve_path(sec[key], base)
    know = tree.get("knowledge")
    if isinstance(know, dict) and isinstance(know.get("docs"), list):
        know["docs"] = [_resolve_path(d, base) if isinstance(d, str) else d for d in know["docs"]]
    if isinstance(tree.get("output"), str):
        tree["output"] = _resolve_path(tree["output"], base)


def load_app_spec(path: str | Path) -> AppSpec:
    """Read and validate an application spec; every problem is reported with its key and line."""
    from .. import specyaml
    from ..spec import SpecErrors, _friendly, _key_lines, _read_text

    path = Path(path)
    if not path.is_file():
        raise LmkError(f"application spec not found: {path}", where=str(path),
                       fix="pass a YAML file such as examples/support/bot.yaml")
    text = _read_text(path)
    try:
        tree = specyaml.load(text)
    except Exception as e:  # yaml errors and the bounded loader's refusals
        raise LmkError(f"the application spec is not valid YAML: {str(getattr(e, 'problem', e))[:300]}",
                       where=str(path), fix="fix the YAML syntax (indentation, colons, quotes)") from None
    if not isinstance(tree, dict) or "app" not in tree:
        raise LmkError(f"{path} is not an application spec: it has no `app:` section", where=str(path),
                       fix="start from examples/support/bot.yaml (model specs run with `lmkernel run`)")
    _resolve_paths(tree, path.parent.resolve())
    try:
        spec = AppSpec.model_validate(tree)
    except ValidationError as e:
        errors = [_friendly(err, str(path), _key_lines(text)) for err in e.errors(include_url=False)]
        if len(errors) == 1:
            raise errors[0] from None
        raise SpecErrors(errors, str(path)) from None
    given = [getattr(getattr(spec, section), key, None) for section, key in _PATHS]
    missing = [str(p) for p in [*spec.knowledge.docs, *given] if p is not None and not Path(p).exists()]
    if missing:
        raise LmkError(f"{len(missing)} path(s) in the application spec do not exist: {', '.join(missing[:5])}",
                       where=str(path), fix="paths are relative to the spec file; check them")
    return spec


def app_dir(spec: AppSpec) -> Path:
    return Path(spec.output) if spec.output else Path.cwd() / "runs" / spec.app.name
