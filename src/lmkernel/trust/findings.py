"""The one shape every guard and flag reports: a finding (what, where in the text, what was done).

Rule guards (PII, blocklists, template injection) find spans; model-based flags (offensive content,
out-of-distribution, low confidence) judge the whole text and leave ``start``/``end`` empty. The
action decides what the caller does: ``flag`` only reports, ``redact`` replaces the span, ``refuse``
turns the request away.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Action = Literal["flag", "redact", "refuse"]
ACTIONS: tuple[str, ...] = ("flag", "redact", "refuse")


@dataclass(frozen=True)
class Finding:
    """One thing a guard found. ``start``/``end`` are character offsets into the checked text
    (end exclusive); both are ``None`` for a judgement of the whole text."""

    type: str
    action: Action
    start: int | None = None
    end: int | None = None
    score: float | None = None
    detail: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type, "start": self.start, "end": self.end, "action": self.action}
        if self.score is not None:
            out["score"] = round(float(self.score), 6)
        if self.detail:
            out["detail"] = self.detail
        return out


@dataclass
class GuardResult:
    """A text after its guards: the findings and the text with every ``redact`` span replaced."""

    text: str
    findings: list[Finding] = field(default_factory=list)
    redacted: str | None = None

    def __post_init__(self) -> None:
        if self.redacted is None:
            self.redacted = self.text

    @property
    def refused(self) -> bool:
        return any(f.action == "refuse" for f in self.findings)

    def to_json(self) -> dict[str, Any]:
        return {"findings": [f.to_json() for f in self.findings], "redacted": self.redacted,
                "refused": self.refused}
