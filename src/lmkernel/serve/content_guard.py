"""Content guards on the serving routes: inputs before the model, generated text after it.

The guard comes from ``--guard FILE`` or the ``guard:`` section the run stored in its card; a
server with neither still looks for chat-template control tokens in messages (they never become
control tokens: ``generation.prompt_ids``) and counts them. A refused request is a 400 whose
message names the finding types, never the text. Every finding is counted in
``lmk_guard_findings{type, action, where}``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..trust.findings import GuardResult
from ..trust.guard import Guard, refusal_message
from ..trust.guardrun import guard_spec
from ..trust.guardspec import GuardSpec, PiiGuard
from .http_errors import ApiError


def build_guard(predictor: Any, guard_file: str | None) -> Guard:
    """The server's guard for a loaded predictor (called in the loading thread: it may load runs)."""
    card = getattr(predictor, "card", None)
    if guard_file is None and not (card or {}).get("guard"):
        spec = GuardSpec(pii=PiiGuard(enabled=False), outputs=False)  # nothing configured: control tokens only
    else:
        spec = guard_spec(card, Path(guard_file) if guard_file else None)
    return Guard.build(spec, tokenizer=getattr(predictor, "tokenizer", None))


def _count(service: Any, results: Sequence[GuardResult], where: str) -> None:
    counter = service.metrics.guard_findings
    for r in results:
        for f in r.findings:
            counter.labels(f.type, f.action, where).inc()


def check(service: Any, texts: list[str], where: str, predictions: Sequence[dict] | None = None) -> list[str]:
    """The texts as the model (or the client) should see them; a 400 when a guard refuses.

    Raises:
        ApiError: 400 naming the finding types of a refused ``where`` (input or output).
    """
    return check_typed(service, texts, where, predictions)[0]


def check_typed(service: Any, texts: list[str], where: str,
                predictions: Sequence[dict] | None = None) -> tuple[list[str], list[list[str]]]:
    """``check``, and the finding types of each text (what the monitor counts as guard hits)."""
    guard: Guard | None = getattr(service, "guard", None)
    if guard is None or not texts or not (guard.spec.inputs if where == "input" else guard.spec.outputs):
        return texts, [[] for _ in texts]
    results = guard.check(texts, predictions)
    _count(service, results, where)
    if any(r.refused for r in results):
        raise ApiError(400, refusal_message(results, where), type_="guard_refused", param=where)
    return [r.redacted for r in results], [[f.type for f in r.findings] for r in results]


async def acheck(service: Any, texts: list[str], where: str) -> list[str]:
    """``check`` off the event loop when a guard runs a model (rule guards alone take well under a millisecond)."""
    guard: Guard | None = getattr(service, "guard", None)
    if guard is not None and (guard.names is not None or guard.offensive is not None):
        import asyncio

        return await asyncio.to_thread(check, service, texts, where)
    return check(service, texts, where)


def check_predictions(service: Any, rows: list[dict]) -> list[list[str]]:
    """Count the ``ood``/``low_confidence`` flags of classifier rows and return their types per row; a 400
    when one of them refuses.

    Raises:
        ApiError: 400 naming the flags when their action is refuse.
    """
    guard: Guard | None = getattr(service, "guard", None)
    if guard is None or not rows or not guard.spec.inputs:
        return [[] for _ in rows]
    results = [GuardResult("", found) for found in guard.flags(rows)]
    _count(service, results, "input")
    if any(r.refused for r in results):
        raise ApiError(400, refusal_message(results, "input"), type_="guard_refused", param="input")
    return [[f.type for f in r.findings] for r in results]


async def check_messages(service: Any, messages: list[Any]) -> list[Any]:
    """Chat messages (serve's ``ChatMessage``) with their text guarded as inputs."""
    texts = await acheck(service, [m.text() for m in messages], "input")
    return [m if m.text() == t else m.model_copy(update={"content": t}) for m, t in zip(messages, texts)]


def output_guarded(service: Any) -> bool:
    """Whether generated text must be checked (then a stream is sent once the whole text is checked)."""
    guard: Guard | None = getattr(service, "guard", None)
    return guard is not None and guard.spec.outputs
