"""A customer-service bot: route a message by intent, answer it from the knowledge base, or hand it to a person.

The decision is deliberately plain and inspectable (every reply says which branch produced it and why):

1. an intent classifier, when given, sends hand-off intents (``human``: asks for a person, complains) to a
   person and refuses out-of-scope intents, when it is confident enough;
2. otherwise the knowledge index is searched, preferring documents in the message's language;
3. below ``answer.min_score`` (the cosine of the question and the best passage) the bot says it does not
   know and offers a person, rather than answer from a passage that does not fit;
4. else it answers: with the passage itself (FAQ style), a span an extractive QA run finds in the passages,
   or a chat model's text written from them, always citing the passages used.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import LmkError
from .spec import AppSpec

APP_FILE = "app.json"


def language(text: str) -> str:
    """``zh`` when a fifth or more of the letters are Chinese characters, else ``en``."""
    import re

    from ..evaluation.textmetrics import HAN

    letters = [c for c in text if c.isalpha()]
    han = sum(1 for c in letters if re.match(f"[{HAN}]", c))
    return "zh" if letters and han / len(letters) >= 0.2 else "en"


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


class SupportBot:
    """A built application directory, loaded: ``SupportBot.load(dir).respond("message")``."""

    def __init__(self, spec: AppSpec, index: Any, intents: Any = None, answerer: Any = None):
        self.spec = spec
        self.index = index
        self.intents = intents
        self.answerer = answerer  # qa / generate modes: (question, hits, lang) -> (text, used citation numbers)

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
        if not isinstance(message, str) or not message.strip():
            raise LmkError("the message is empty", where="message", fix="send the customer's text")
        lang = language(message)
        routed = self._route(message, lang)
        if routed is not None and routed.kind != "pass":
            return routed
        intent, intent_score = (routed.intent, routed.intent_score) if routed else (None, None)
        hits = self._search(message, lang)
        best = _similarity(hits[0]) if hits else None
        if not hits or best is None or best < self.spec.answer.min_score:
            handoff = self.spec.handoff
            return Reply("unknown", handoff.unknown_zh if lang == "zh" else handoff.unknown_en, lang, intent,
                         intent_score, best)
        if self.answerer is None:  # passage mode: the best passage is the answer
            text, used = hits[0].text, [1]
        else:
            text, used = self.answerer(message, hits, lang)
        cites = [{"index": n, "chunk_id": hits[n - 1].chunk_id, "doc_id": hits[n - 1].doc_id,
                  "source": hits[n - 1].source, "text": hits[n - 1].text} for n in used if 1 <= n <= len(hits)]
        return Reply("answer", text, lang, intent, intent_score, best, cites)


def _similarity(hit: Any) -> float | None:
    """The number ``min_score`` is compared with: the passage's cosine with the question."""
    dense = getattr(hit, "dense", None)
    return float(dense) if dense is not None else None


def _answerer(spec: AppSpec):
    """The qa / generate answer function (passage mode needs none)."""
    if spec.answer.mode == "passage":
        return None
    from ..knowledge import answer as grounded

    if spec.answer.mode == "qa":
        return grounded.qa_answerer(spec.answer.qa)
    return grounded.generator_answerer(spec.answer.generator)


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
