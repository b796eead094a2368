"""The ``guard:`` section: which guards run on a model's inputs and outputs, and what each one does.

The same model is a run spec's optional ``guard:`` section (stored in the artifact card, so
``serve``, ``predict`` and ``generate`` apply it by default) and the YAML file of ``--guard FILE``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from ..errors import LmkError
from ..specmodel import SpecModel, SpecPath
from .pii import PII_TYPES

ActionField = Literal["flag", "redact", "refuse"]


class PiiGuard(SpecModel):
    enabled: bool = Field(True, description="Detect personal data (e-mail, phone, PRC ID, bank card, IBAN, IP; "
                          "person names with names_model).")
    action: ActionField = Field("redact", description="flag | redact (replace each span by its placeholder) | "
                                "refuse (turn the request away).")
    types: list[str] = Field(default_factory=lambda: list(PII_TYPES),
                             description="Which kinds to look for: " + ", ".join(PII_TYPES) + ".")
    placeholder: str = Field("[{TYPE}]", description="What replaces a redacted span; {TYPE} is the upper-cased "
                             "type ([EMAIL], [PHONE], ...), {type} the type as written.")
    min_score: float = Field(0.5, ge=0, le=1, description="Findings scored below this are dropped (bare digit runs "
                             "that only the words before call a phone score 0.6).")
    names_model: str | None = Field(None, description="A run of the ner task whose PER entities are person names "
                                    "(none: names are not looked for).")

    @field_validator("types")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        bad = [t for t in value if t not in PII_TYPES]
        if bad:
            raise ValueError(f"unknown PII type(s) {bad}; known: {', '.join(PII_TYPES)}")
        return value


class BlocklistGuard(SpecModel):
    enabled: bool = Field(True, description="Match the listed words and phrases (after NFKC, case folding and "
                          "traditional-to-simplified Chinese); nothing to do without words or file.")
    action: ActionField = Field("flag", description="flag | redact | refuse.")
    words: list[str] = Field(default_factory=list, description="Words and phrases to block (Latin-script entries "
                             "match whole words).")
    file: SpecPath | None = Field(None, description="A UTF-8 file of more entries, one a line ('#' starts a "
                                  "comment line).")
    placeholder: str = Field("[BLOCKED]", description="What replaces a redacted entry.")


class InjectionGuard(SpecModel):
    action: Literal["flag", "refuse"] = Field("flag", description="What to do with a message holding chat-template "
                                              "control tokens. Always on: such text never becomes control tokens "
                                              "in the prompt; flag reports it, refuse turns the request away.")


class OffensiveGuard(SpecModel):
    model: str | None = Field(None, description="A classification run that scores offensive content (none: off).")
    labels: list[str] = Field(default_factory=lambda: ["offensive"], description="The run's label(s) that count as "
                              "offensive; their probabilities are summed.")
    threshold: float = Field(0.5, ge=0, le=1, description="Flag a text whose offensive probability is at least this.")
    action: ActionField = Field("flag", description="flag | redact (the whole text becomes [OFFENSIVE]) | refuse.")


class FlagGuard(SpecModel):
    enabled: bool = Field(True, description="Report the flag when the classification run's predictions carry it "
                          "(its trust profile, written at training time).")
    action: Literal["flag", "refuse"] = Field("flag", description="flag | refuse.")


class GuardSpec(SpecModel):
    inputs: bool = Field(True, description="Guard the texts and messages sent to the model.")
    outputs: bool = Field(True, description="Guard the text the model generates.")
    pii: PiiGuard = Field(default_factory=PiiGuard, description="Personal data detection and redaction.")
    blocklist: BlocklistGuard = Field(default_factory=BlocklistGuard, description="Words and phrases to catch.")
    injection: InjectionGuard = Field(default_factory=InjectionGuard, description="Chat-template control tokens "
                                      "in message text (always neutralised).")
    offensive: OffensiveGuard = Field(default_factory=OffensiveGuard, description="A classifier of offensive "
                                      "content, on inputs and outputs.")
    ood: FlagGuard = Field(default_factory=FlagGuard, description="Out-of-distribution inputs (classification).")
    low_confidence: FlagGuard = Field(default_factory=FlagGuard, description="Predictions below the calibrated "
                                      "confidence (classification).")


def load_guard_file(path: Path) -> GuardSpec:
    """A ``--guard FILE``: the YAML of a ``guard:`` section (with or without the ``guard:`` key)."""
    import yaml
    from pydantic import ValidationError

    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise LmkError(f"cannot read the guard file: {e}", where=str(path),
                       fix="give a YAML file such as 'pii: {action: redact}'") from e
    if isinstance(data, dict) and set(data) == {"guard"}:
        data = data["guard"]
    if not isinstance(data, dict):
        raise LmkError("the guard file must hold a mapping of guard sections", where=str(path),
                       fix="write e.g. 'pii: {action: redact}' and 'blocklist: {words: [...]}'")
    try:
        return GuardSpec.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        key = ".".join(str(x) for x in first["loc"])
        raise LmkError(f"bad guard setting {key!r}: {first['msg']}", where=f"{path}: {key}",
                       fix="see docs/trust.md, section Guards, for every key") from e
