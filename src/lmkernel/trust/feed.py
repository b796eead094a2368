"""Reading a feed for ``lmkernel monitor`` and replaying it through a model into a ``Watch``.

A feed is JSONL (one object per line with the text and, optionally, a timestamp) or plain text (one
text per line). Timestamps make a replay deterministic: the windows and the rules see the feed's
own clock, so the same feed raises the same alerts at the same records every time. Without them
the records get the wall clock, or ``rate`` records per second from 0 when a rate is given.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from ..errors import LmkError
from .watch import Watch, record_for


def _time(value: Any, where: str, field: str) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            pass
    raise LmkError(f"the time field {field!r} holds {value!r}, not a time", where=where,
                   fix="give unix seconds or an ISO-8601 time (2026-12-07T10:00:00Z)")


def read_feed(source: str | Path, text_field: str = "text", time_field: str | None = None,
              rate: float | None = None) -> Iterator[tuple[str, float | None, str]]:
    """(text, time or None, where) per feed line; ``source`` ``-`` is stdin.

    Raises:
        LmkError: an unreadable file, a JSON line without the text field, or a bad timestamp.
    """
    stream: IO[str]
    if str(source) == "-":
        stream, name = sys.stdin, "stdin"
    else:
        try:
            stream, name = open(source, encoding="utf-8"), str(source)  # noqa: SIM115 (closed below)
        except OSError as e:
            raise LmkError(f"cannot read the feed {source}: {e.strerror or e}", where="--input") from e
    try:
        n = 0
        for lineno, line in enumerate(stream, 1):
            if not line.strip():
                continue
            where = f"{name}:{lineno}"
            text, at = _parse(line, where, text_field, time_field)
            if at is None and rate:
                at = n / rate
            n += 1
            yield text, at, where
    except UnicodeDecodeError as e:
        raise LmkError(f"the feed {name} is not UTF-8 text", where="--input") from e
    finally:
        if stream is not sys.stdin:
            stream.close()


def _parse(line: str, where: str, text_field: str, time_field: str | None) -> tuple[str, float | None]:
    stripped = line.strip()
    if not stripped.startswith("{"):
        if time_field:
            raise LmkError("--time-field needs JSON lines", where=where, fix="write the feed as JSONL")
        return stripped, None
    try:
        row = json.loads(stripped)
    except ValueError as e:
        raise LmkError(f"bad JSON line: {e}", where=where, fix="one JSON object per line") from e
    text = row.get(text_field) if isinstance(row, dict) else None
    if not isinstance(text, str):
        raise LmkError(f"the line has no text in {text_field!r}", where=where,
                       fix="pass --text-field with the key that holds the text")
    if time_field is None:
        return text, None
    if time_field not in row:
        raise LmkError(f"the line has no time field {time_field!r}", where=where,
                       fix="give every line the field, or leave out --time-field")
    return text, _time(row[time_field], where, time_field)


def replay(predict: Callable[[list[str]], list[dict[str, Any]]], feed: Iterator[tuple[str, float | None, str]],
           watch: Watch, batch_size: int = 64, on_event: Callable[[Any, int], None] | None = None,
           guard: Any = None) -> int:
    """Classify the feed in batches and observe each text; ``on_event(event, record_number)`` for each
    alert as it fires or resolves; ``guard`` (a :class:`~lmkernel.trust.guard.Guard`) checks each text
    first, as the server does: the model and the monitor see the redacted text, and the findings (the
    prediction's ood/low-confidence flags included) are counted as guard hits. A text the guard would
    refuse is still scored here, so the monitor counts it. Returns the number of records."""
    n, batch = 0, []
    for item in feed:
        batch.append(item)
        if len(batch) == batch_size:
            n = _run(predict, batch, watch, n, on_event, guard)
            batch = []
    if batch:
        n = _run(predict, batch, watch, n, on_event, guard)
    return n


def _run(predict, batch, watch: Watch, n: int, on_event, guard) -> int:
    texts = [text for text, _, _ in batch]
    checked = guard.check(texts) if guard is not None and guard.spec.inputs else None
    if checked is not None:
        texts = [r.redacted for r in checked]
    rows = predict(texts)
    flags = guard.flags(rows) if checked is not None else [[] for _ in rows]
    for i, ((_, at, _), text, row) in enumerate(zip(batch, texts, rows)):
        n += 1
        found = (checked[i].findings if checked is not None else []) + flags[i]
        record = record_for(text, row, guards=[f.type for f in found], at=time.time() if at is None else at)
        for event in watch.observe(record):
            if on_event is not None:
                on_event(event, n)
    return n
