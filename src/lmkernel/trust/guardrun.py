"""Which guard applies to a model: ``--guard FILE``, else the ``guard:`` section its run stored in the card,
else the defaults; and the helpers that ``guard``, ``predict``, ``generate`` and ``serve`` share."""

from __future__ import annotations

import io
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

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


def cli_guard(model, guard_file: Path | None) -> Guard | None:
    """``predict``/``generate``: the guard when ``--guard`` or the run's card asks for one, else None."""
    if guard_file is None and not (getattr(model, "card", None) or {}).get("guard"):
        return None
    return guard_for(model, guard_file)


def summary(results: Sequence[GuardResult]) -> str:
    """``email redact, phone redact``: what the guards did, for a note on stderr (never the text)."""
    return ", ".join(f"{f.type} {f.action}" for r in results for f in r.findings)


def guard_predictions(guard: Guard, texts: list[str], predict) -> list[dict]:
    """``lmkernel predict`` under a guard: inputs redacted before ``predict``, each row's findings (its
    ood/low_confidence flags included) under ``guard``; a refused text stops with an LmkError."""
    results = guard.check(texts) if guard.spec.inputs else [GuardResult(t) for t in texts]
    refuse_if(results, "input", "remove what the guard names from the texts, or change the guard's action")
    rows = predict([r.redacted for r in results])
    flags = guard.flags(rows) if guard.spec.inputs else [[] for _ in rows]
    refuse_if([GuardResult("", f) for f in flags], "input", "change the guard's ood/low_confidence action to flag")
    for row, r, f in zip(rows, results, flags):
        found = r.findings + f
        if found:
            row["guard"] = [x.to_json() for x in found]
    return rows


@dataclass
class CliGuard:
    """``lmkernel generate`` under a guard: the prompt checked before, the reply after (a guarded reply is
    printed once it is checked, since printed text cannot be taken back). Notes go to stderr."""

    guard: Guard | None

    @classmethod
    def of(cls, model, guard_file: Path | None) -> CliGuard:
        return cls(cli_guard(model, guard_file))

    def input(self, text: str | None) -> str | None:
        if self.guard is None or text is None or not self.guard.spec.inputs:
            return text
        return self._check(text, "input", "remove what the guard names from the prompt")

    def reply(self, run: Callable[[TextIO], dict]) -> str:
        """Runs ``run(out)`` (which prints the reply to ``out`` and returns its result) and returns the text."""
        if self.guard is None or not self.guard.spec.outputs:
            return run(sys.stdout).get("text", "")
        buffer = io.StringIO()
        text = run(buffer).get("text", buffer.getvalue())
        safe = self._check(text, "reply", "generate again, or change the guard's action")
        sys.stdout.write(safe + ("\n" if buffer.getvalue().endswith("\n") else ""))
        sys.stdout.flush()
        return safe

    def _check(self, text: str, where: str, fix: str) -> str:
        assert self.guard is not None
        results = self.guard.check([text])
        refuse_if(results, where, fix)
        if results[0].findings:
            print(f"guard ({where}): {summary(results)}", file=sys.stderr)
        return results[0].redacted
