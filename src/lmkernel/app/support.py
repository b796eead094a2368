"""A customer-service bot: route a message by intent, answer it from the knowledge base, or hand it to a person.

The decision is deliberately plain and inspectable (every reply says which branch produced it and why):

1. an intent classifier, when given, sends hand-off intents (``human``: asks for a person, complains) to a
   person and refuses out-of-scope intents, when it is confident enough;
2. otherwise the knowledge index is searched, preferring documents in the message's language;
3. below ``answer.min_score`` (the cosine of the question and the best passage; for a language the embedding
   model does not read, ``answer.min_bm25`` on the BM25 score instead) the bot says it does not know and
   offers a person, rather than answer from a passage that does not fit;
4. else it answers: with the passage itself (FAQ style), a span an extractive QA run finds in the passages,
   or a chat model's text written from them, always citing the passages used.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import LmkError
from ..knowledge.answer import language
from .spec import AppSpec

__all__ = ["Reply", "SupportBot", "language", "read_app", "write_app"]

APP_FILE = "app.json"


@dataclass
class Reply:
    """What the bot answers and why: ``kind`` is answer | handoff | unknown | out_of_scope."""

    kind: str
    text: str
    lang: str
    intent: str | None = None
    intent_score: float | None = None
    score: float | None = None  # the best passage's cosine with the question
    citations: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Retrieved:
    """One message's language, intent routing and passages (``SupportBot.retrieve``): the threshold-free part
    of a reply, so ``app eval`` can try thresholds without classifying and searching again."""

    message: str
    lang: str
    routed: Reply | None  # the intent's reply (handoff / out_of_scope), "pass", or None without intents
    hits: list[Any] = field(default_factory=list)
    best: float | None = None  # the best passage's cosine with the message
    answer: Any = None  # the QA / chat model's answer, once computed


class SupportBot:
    """A built application directory, loaded: ``SupportBot.load(dir).respond("message")``."""

    def __init__(self, spec: AppSpec, index: Any, intents: Any = None, answerer: Any = None):
        self.spec = spec
        self.index = index
        self.intents = intents
        self.answerer = answerer  # qa / generate modes: (message, hits) -> knowledge.answer.Answer

    @classmethod
    def load(cls, path: str | Path) -> SupportBot:
        from ..artifact import load
        from ..knowledge.index import open_index

        path = Path(path)
        spec = read_app(path)
        intents = load(path / "intents") if (path / "intents").exists() else None
        if intents is None and spec.intents is not None and spec.intents.run is not None:
            intents = load(spec.intents.run)
        return cls(spec, open_index(path / "index"), intents, _answerer(spec))

    def _route(self, message: str, lang: str) -> Reply | None:
        """A hand-off or out-of-scope reply when the intent classifier is confident of one, else None."""
        if self.intents is None or self.spec.intents is None:
            return None
        pred = self.intents.predict([message])[0]
        label, conf = pred["label"], float(pred["score"])
        handoff = self.spec.handoff
        if conf >= self.spec.intents.min_confidence and label in handoff.intents:
            return Reply("handoff", handoff.message_zh if lang == "zh" else handoff.message_en, lang, label, conf)
        if conf >= self.spec.intents.min_confidence and label in handoff.out_of_scope:
            return Reply("out_of_scope", handoff.unknown_zh if lang == "zh" else handoff.unknown_en, lang, label,
                         conf)
        return Reply("pass", "", lang, label, conf)

    def _search(self, message: str, lang: str) -> list[Any]:
        know = self.spec.knowledge
        if know.language_field:
            hits = self.index.search(message, k=know.k, mode=know.mode, filters={know.language_field: lang})
            if hits:
                return hits
        return self.index.search(message, k=know.k, mode=know.mode)

    def respond(self, message: str) -> Reply:
        """The bot's reply to one customer message."""
        return self.decide(self.retrieve(message))

    def retrieve(self, message: str) -> Retrieved:
        """Everything the reply depends on but the threshold: the language, the intent's routing, the passages."""
        if not isinstance(message, str) or not message.strip():
            raise LmkError("the message is empty", where="message", fix="send the customer's text")
        lang = language(message)
        routed = self._route(message, lang)
        if routed is not None and routed.kind != "pass":
            return Retrieved(message, lang, routed)
        hits = self._search(message, lang)
        return Retrieved(message, lang, routed, hits, _similarity(hits[0]) if hits else None)

    def decide(self, r: Retrieved, min_score: float | None = None) -> Reply:
        """The reply for what ``retrieve`` found, at ``min_score`` (default: the spec's ``answer.min_score``);
        the QA / chat model's answer is computed once per ``Retrieved``, whatever the threshold."""
        if r.routed is not None and r.routed.kind != "pass":
            return r.routed
        intent, intent_score = (r.routed.intent, r.routed.intent_score) if r.routed else (None, None)
        min_score = self.spec.answer.min_score if min_score is None else min_score
        if not r.hits or not self._relevant(r, min_score):
            return self._unknown(r.lang, intent, intent_score, r.best)
        if self.answerer is None:  # passage mode: the best passage is the answer
            text, cites = r.hits[0].text, [_cite(1, r.hits[0])]
        else:
            if r.answer is None:
                r.answer = self.answerer(r.message, r.hits)
            if not r.answer.grounded:  # the QA model found no span in any passage
                return self._unknown(r.lang, intent, intent_score, r.best)
            text, cites = r.answer.answer, [_cite(c.index, r.hits[c.index - 1]) for c in r.answer.citations]
        return Reply("answer", text, r.lang, intent, intent_score, r.best, cites)

    def _relevant(self, r: Retrieved, min_score: float) -> bool:
        """Whether the best passage fits the message: its cosine when the index's embedding model reads the
        message's language, else (a Chinese message, an English-only encoder) its BM25 score."""
        from ..knowledge.answer import below_bm25
        from ..knowledge.settings import reads

        if reads(r.message, getattr(self.index, "manifest", {})):
            return r.best is not None and r.best >= min_score
        return not below_bm25(r.hits, self.spec.answer.min_bm25)

    def _unknown(self, lang: str, intent: str | None, intent_score: float | None, best: float | None) -> Reply:
        handoff = self.spec.handoff
        return Reply("unknown", handoff.unknown_zh if lang == "zh" else handoff.unknown_en, lang, intent,
                     intent_score, best)


def _cite(n: int, hit: Any) -> dict[str, Any]:
    return {"index": n, "chunk_id": hit.chunk_id, "doc_id": hit.doc_id, "source": hit.source, "text": hit.text}


def _similarity(hit: Any) -> float | None:
    """The number ``min_score`` is compared with: the passage's cosine with the question."""
    dense = getattr(hit, "dense", None)
    return float(dense) if dense is not None else None


class _Found:
    """Passages the bot already retrieved (in the message's language), as the index ``knowledge.answer``
    prepares a grounded answer from: the prompt, its trimming to the context and the citations are its."""

    def __init__(self, hits: list[Any]):
        self.hits = hits

    def search(self, query: str, k: int = 5, filters: dict | None = None, mode: str = "hybrid") -> list[Any]:
        return self.hits[:k]


def _answerer(spec: AppSpec):
    """qa / generate modes: ``(message, hits) -> knowledge.answer.Answer`` (passage mode needs none)."""
    if spec.answer.mode == "passage":
        return None
    if spec.answer.mode == "qa":
        from ..knowledge.answer import load_qa

        return answerer(spec.knowledge.k, qa=load_qa(spec.answer.qa))
    from ..artifact import load_generator

    return answerer(spec.knowledge.k, generator=load_generator(spec.answer.generator),
                    max_new_tokens=spec.answer.max_new_tokens)


def answerer(k: int, qa: Any = None, generator: Any = None, max_new_tokens: int = 256):
    """The answer function of a loaded extractive QA model or chat model (or a ``messages -> text`` callable)."""
    from ..knowledge import answer as grounded

    if qa is not None:
        return lambda message, hits: grounded.extract(grounded.prepare(_Found(hits), message, k=k, min_score=-1.0),
                                                      qa)
    reply, fits = grounded.reply_fn(generator, max_new_tokens)

    def generate(message: str, hits: list[Any]):
        grounding = grounded.prepare(_Found(hits), message, k=k, min_score=-1.0, fits=fits)
        return grounded.finish(grounding, reply(grounding.messages))

    return generate


def write_app(path: Path, spec: AppSpec, built: dict[str, Any]) -> None:
    """The application's manifest: its spec (paths resolved) and what was built, written atomically."""
    from ..fsutil import atomic_write_text

    payload = {"format": 1, "spec": spec.model_dump(mode="json"), "built": built}
    atomic_write_text(path / APP_FILE, json.dumps(payload, ensure_ascii=False, indent=2))


def read_app(path: Path) -> AppSpec:
    """The spec stored in an application directory, with a clear error when it is not one."""
    from pydantic import ValidationError

    file = Path(path) / APP_FILE
    try:
        payload = json.loads(file.read_text(encoding="utf-8"))
        return AppSpec.model_validate(payload["spec"])
    except FileNotFoundError:
        raise LmkError(f"{path} is not an application directory: {APP_FILE} is missing", where=str(path),
                       fix="build it first: lmkernel app run SPEC.yaml") from None
    except (OSError, ValueError, KeyError, TypeError, ValidationError) as e:
        raise LmkError(f"{file} is damaged: {str(e)[:200]}", where=str(file),
                       fix="rebuild the application: lmkernel app run SPEC.yaml") from None
