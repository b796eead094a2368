"""Which guard applies to a model: ``--guard FILE``, else the ``guard:`` section its run stored in the card,
else the defaults; and the helpers that ``guard``, ``predict``, ``generate`` and ``serve`` share."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import LmkError
from .findings import GuardResult
from .guard import Guard, refusal_message
from .guardspec import GuardSpec, load_guard_file


def card_spec(card: dict[str, Any] | None) -> GuardSpec | None:
    """The ``guard:`` section a run stored in its card (None when it has none)."""
    raw = (card or {}).get("guard")
    if raw is None:
        return None
    from pydantic import ValidationError

    try:
        return GuardSpec.model_validate(raw)
    except ValidationError as e:
        raise LmkError(f"the model card's guard section is invalid: {e.errors()[0]['msg']}", where="model card: guard",
                       fix="retrain, or pass --guard FILE to override it") from e


def guard_spec(card: dict[str, Any] | None, guard_file: Path | None) -> GuardSpec:
    if guard_file is not None:
        return load_guard_file(guard_file)
    return card_spec(card) or GuardSpec()


def guard_for(model, guard_file: Path | None = None) -> Guard:
    """The guard for a loaded model (``lmkernel.load``/``load_generator``): its spec, its control tokens."""
    spec = guard_spec(getattr(model, "card", None), guard_file)
    return Guard.build(spec, tokenizer=getattr(model, "tokenizer", None))


def guard_texts(texts: list[str], *, model: str | None = None,
                guard_file: Path | None = None) -> tuple[list[GuardResult], list[str]]:
    """``lmkernel guard``: the results per text and notes on what could not run."""
    predictions = None
    if model is None:
        g = Guard.build(guard_spec(None, guard_file))
    else:
        from ..artifact import load

        loaded = load(model)
        g = guard_for(loaded, guard_file)
        if loaded.card["task"] == "classification":
            predictions = loaded.predict(texts)
    results = g.check(texts, predictions)
    return results, g.notes()


def refuse_if(results: Sequence[GuardResult], where: str, fix: str) -> None:
    """An LmkError naming the finding types when any result is refused (the CLI's refusal)."""
    if any(r.refused for r in results):
        raise LmkError(refusal_message(results, where), where="guard", fix=fix)
