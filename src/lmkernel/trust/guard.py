"""The guard pipeline: every configured guard over a batch of texts, findings merged, text redacted.

Rule guards (PII, blocklist, template injection) find spans; model guards judge whole texts: an
offensive-content classifier run, and the ``ood``/``low_confidence`` keys of the served model's own
prediction rows (present when its run has a trust profile; when they are absent those guards do
nothing and say so once). Models load once, when the ``Guard`` is built, and run batched.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import LmkError
from . import blocklist as bl
from . import injection, pii
from .findings import Finding, GuardResult
from .guardspec import GuardSpec

log = logging.getLogger("lmkernel.guard")
WHOLE_TEXT = {"offensive": "[OFFENSIVE]", "ood": "[OOD]", "low_confidence": "[LOW_CONFIDENCE]"}


def _load_run(ref: str, task: str, key: str):
    from ..artifact import load

    try:
        model = load(ref)
    except LmkError as e:
        raise LmkError(f"cannot load the {key} run: {e.what}", where=f"guard.{key}",
                       fix=e.fix or f"give a run directory of the {task} task") from e
    if model.card["task"] != task:
        raise LmkError(f"guard.{key} is a {model.card['task']} run, not a {task} run", where=f"guard.{key}: {ref}",
                       fix=f"give a run trained with task.type: {task}")
    return model


@dataclass
class Guard:
    """A ``GuardSpec`` made ready: lists compiled, models loaded. ``check`` is thread-safe for reading."""

    spec: GuardSpec
    names: pii.NameFinder | None = None
    offensive: Any = None  # a loaded classification Model
    control: re.Pattern[str] | None = None  # the served tokenizer's special-token strings
    _blocklist: bl.Blocklist = field(default_factory=lambda: bl.build([]))
    _said: dict[str, str] = field(default_factory=dict)

    @classmethod
    def build(cls, spec: GuardSpec | None = None, *, tokenizer=None, loader: Callable = _load_run) -> Guard:
        spec = spec or GuardSpec()
        words = list(spec.blocklist.words)
        if spec.blocklist.file is not None:
            words += bl.read_words(spec.blocklist.file)
        names = offensive = None
        if spec.pii.enabled and spec.pii.names_model and "person" in spec.pii.types:
            names = pii.ner_names(loader(spec.pii.names_model, "ner", "pii.names_model"))
        if spec.offensive.model:
            offensive = loader(spec.offensive.model, "classification", "offensive.model")
            missing = [lab for lab in spec.offensive.labels if lab not in offensive.labels]
            if missing:
                raise LmkError(f"guard.offensive.labels {missing} are not labels of {spec.offensive.model}",
                               where="guard.offensive.labels", fix=f"use some of {offensive.labels}")
        control = injection.control_pattern(injection.special_strings(tokenizer)) if tokenizer is not None else None
        return cls(spec, names, offensive, control, bl.build(words) if spec.blocklist.enabled else bl.build([]))

    def check(self, texts: Sequence[str], predictions: Sequence[dict] | None = None) -> list[GuardResult]:
        """Each text's findings and redacted form. ``predictions``: the served classifier's rows for
        these texts (their ``ood``/``low_confidence`` keys become findings)."""
        texts = list(texts)
        spans = self._spans(texts)
        judged = self._judged(texts, predictions)
        return [self._result(t, s + j) for t, s, j in zip(texts, spans, judged)]

    def _spans(self, texts: list[str]) -> list[list[Finding]]:
        s = self.spec
        names = self.names(texts) if self.names is not None and texts else [[] for _ in texts]
        out = []
        for text, found_names in zip(texts, names):
            found: list[Finding] = []
            if s.pii.enabled:
                for m in pii.detect(text, s.pii.types, s.pii.min_score, found_names):
                    found.append(Finding(m.type, s.pii.action, m.start, m.end, m.score, m.detail))
            for a, b, entry in self._blocklist.find(text):
                found.append(Finding("blocklist", s.blocklist.action, a, b, 1.0, entry))
            for a, b in injection.find(text, self.control):
                found.append(Finding("template_injection", s.injection.action, a, b, 1.0, text[a:b]))
            out.append(found)
        return out

    def _judged(self, texts: list[str], predictions: Sequence[dict] | None) -> list[list[Finding]]:
        out: list[list[Finding]] = [[] for _ in texts]
        if self.offensive is not None and texts:
            o = self.spec.offensive
            for found, row in zip(out, self.offensive.predict(texts)):
                p = sum(float(row["probabilities"].get(lab, 0.0)) for lab in o.labels)
                if p >= o.threshold:
                    found.append(Finding("offensive", o.action, None, None, p, ",".join(o.labels)))
        if predictions is not None:
            for found, flags in zip(out, self.flags(predictions)):
                found.extend(flags)
        return out

    def flags(self, predictions: Sequence[dict]) -> list[list[Finding]]:
        """The ``ood``/``low_confidence`` findings of a classifier's prediction rows."""
        out: list[list[Finding]] = [[] for _ in predictions]
        for key in ("ood", "low_confidence"):
            flag = getattr(self.spec, key)
            if not flag.enabled:
                continue
            if predictions and all(key not in row for row in predictions):
                self._say_once(key, f"the {key} guard does nothing: the model's predictions carry no '{key}' "
                               "(its run has no trust profile)")
                continue
            for found, row in zip(out, predictions):
                if row.get(key):
                    score = row.get("ood_score") if key == "ood" else row.get("score")
                    found.append(Finding(key, flag.action, None, None, score, None))
        return out

    def _say_once(self, key: str, message: str) -> None:
        if key not in self._said:
            self._said[key] = message
            log.warning(message)

    def _result(self, text: str, findings: list[Finding]) -> GuardResult:
        findings = _resolve(findings)
        return GuardResult(text, findings, redact(text, findings, self._placeholder))

    def _placeholder(self, f: Finding) -> str:
        if f.type == "blocklist":
            return self.spec.blocklist.placeholder
        if f.type in WHOLE_TEXT:
            return WHOLE_TEXT[f.type]
        return self.spec.pii.placeholder.replace("{TYPE}", f.type.upper()).replace("{type}", f.type)

    def notes(self) -> list[str]:
        """What the guard could not do (said once each)."""
        return list(self._said.values())


def _resolve(findings: list[Finding]) -> list[Finding]:
    """Span findings that overlap: the one redacting or refusing wins, then the longer; whole-text ones stay."""
    whole = [f for f in findings if f.start is None]
    rank = {"refuse": 2, "redact": 1, "flag": 0}
    kept: list[Finding] = []
    for f in sorted((f for f in findings if f.start is not None),
                    key=lambda f: (-rank[f.action], -(f.end - f.start), f.start)):
        if all(f.end <= k.start or f.start >= k.end for k in kept):
            kept.append(f)
    return sorted(kept, key=lambda f: f.start) + whole


def redact(text: str, findings: list[Finding], placeholder: Callable[[Finding], str]) -> str:
    """``text`` with each ``redact`` span replaced (right to left, so earlier offsets hold); a whole-text
    ``redact`` finding replaces the whole text."""
    for f in findings:
        if f.action == "redact" and f.start is None:
            return placeholder(f)
    out = text
    for f in sorted((f for f in findings if f.action == "redact" and f.start is not None), key=lambda f: -f.start):
        out = out[:f.start] + placeholder(f) + out[f.end:]
    return out


def refusal_message(results: Sequence[GuardResult], where: str) -> str:
    """The 4xx message of a refused request: the finding types only, never the text."""
    types = sorted({f.type for r in results for f in r.findings if f.action == "refuse"})
    return f"the {where} was refused by the guard: {', '.join(types)}"


_PII_ONLY: Guard | None = None


def redact_pii(text: str) -> str:
    """``text`` with its personal data replaced by placeholders (the default PII guard, names aside): what
    the audit log writes in place of a text."""
    global _PII_ONLY
    if _PII_ONLY is None:
        _PII_ONLY = Guard.build(GuardSpec.model_validate({"blocklist": {"enabled": False}}))
    return _PII_ONLY.check([text])[0].redacted
