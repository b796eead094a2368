"""Reading the embedding task's rows: pairs, triplets or scored pairs, told apart by their columns.

Column names are found the way sentence-transformers users name them (anchor/positive/negative,
sentence1/sentence2/score, query/document, ...) unless the task options name them. A row missing a
text, with an empty one, or with a score that is not a number is a bad row naming file and line.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..data.readers import BadRow, read_rows
from ..errors import LmkError
from .base import Dataset, Example
from .classification import check_bad_rows

TEXT1 = ("anchor", "query", "sentence1", "text1", "question", "sentence_a", "text_a")
TEXT2 = ("positive", "sentence2", "text2", "document", "answer", "paraphrase", "sentence_b", "text_b")
NEGATIVE = ("negative", "hard_negative", "negative_1")
SCORE = ("score", "similarity", "label")
FORMATS = ("pairs", "triplets", "scored")


@dataclass(frozen=True)
class Layout:
    """Which columns hold what, and the format they make."""

    format: str
    text1: str
    text2: str
    negative: str | None = None
    score: str | None = None

    @property
    def texts(self) -> list[str]:
        return [self.text1, self.text2] + ([self.negative] if self.negative else [])


def _pick(columns: list[str], chosen: str | None, candidates: tuple[str, ...]) -> str | None:
    if chosen is not None:
        return chosen if chosen in columns else None
    return next((c for c in candidates if c in columns), None)


def detect_layout(columns: list[str], opts: Any, path: Path) -> Layout:
    """The format and columns of a file with these ``columns`` (explicit options win over the guesses)."""
    text1 = _pick(columns, opts.text1_column, TEXT1)
    text2 = _pick(columns, opts.text2_column, TEXT2)
    negative = _pick(columns, opts.negative_column, NEGATIVE)
    score = _pick(columns, opts.score_column, SCORE)
    if text1 is None or text2 is None:
        which = "first" if text1 is None else "second"
        named = opts.text1_column if text1 is None else opts.text2_column
        raise LmkError(
            f"no column for the {which} text" + (f" ({named!r})" if named else "") + f"; the file has {columns}",
            where=f"{path}:1 (header)",
            fix="name the columns anchor/positive[/negative], sentence1/sentence2/score, or set "
            "task.text1_column, task.text2_column (and task.negative_column / task.score_column)")
    fmt = opts.format
    if fmt == "auto":
        fmt = "triplets" if negative else "scored" if score else "pairs"
    needed = {"triplets": ("negative", negative, opts.negative_column, NEGATIVE),
              "scored": ("score", score, opts.score_column, SCORE)}.get(fmt)
    if needed and needed[1] is None:
        raise LmkError(f"task.format is {fmt}, but there is no {needed[0]} column"
                       + (f" {needed[2]!r}" if needed[2] else "") + f"; the file has {columns}",
                       where=f"{path}:1 (header)",
                       fix=f"name it one of {list(needed[3])}, set task.{needed[0]}_column, or change task.format")
    return Layout(fmt, text1, text2, negative if fmt == "triplets" else None, score if fmt == "scored" else None)


def _score(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        score = float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        return None
    return score if math.isfinite(score) else None


def _row_problem(fields: dict[str, Any], layout: Layout) -> tuple[list[str], float | None, str | None]:
    """(texts, score, problem) of one row; ``problem`` says why the row cannot be used."""
    texts = []
    for column in layout.texts:
        value = fields.get(column)
        if value is None:
            return [], None, f"missing text in column {column!r}"
        text = value.strip() if isinstance(value, str) else ""
        if not text:
            return [], None, f"empty text in column {column!r}"
        texts.append(text)
    score = None
    if layout.score is not None:
        score = _score(fields.get(layout.score))
        if score is None:
            return [], None, f"score {fields.get(layout.score)!r} in column {layout.score!r} is not a number"
    return texts, score, None


def read_split(path: Path, data: Any, opts: Any) -> tuple[Dataset, Layout]:
    """Read one split: validated examples (``fields["texts"]``, ``label``: the score or None) and bad rows."""
    result = read_rows(path, [], data.format)
    columns = list(dict.fromkeys(k for row in result.rows for k in row.fields))
    if not columns:
        check_bad_rows(result.bad, data.on_bad_rows, str(path))
        raise LmkError(f"no rows in {path}", where=str(path), fix="add rows of text pairs")
    layout = detect_layout(columns, opts, path)
    bad = list(result.bad)
    examples = []
    for row in result.rows:
        texts, score, problem = _row_problem(row.fields, layout)
        if problem:
            bad.append(BadRow(str(path), row.line, problem))
        else:
            examples.append(Example(texts[0], score, str(path), row.line, {"texts": texts}))
    bad.sort(key=lambda b: b.line)
    check_bad_rows(bad, data.on_bad_rows, str(path))
    return Dataset(examples, bad), layout
