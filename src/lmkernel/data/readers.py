"""Readers for CSV, TSV and JSONL files that never lose track of where a row came from.

Each row keeps its 1-based physical line number, so every complaint can name file and line.
Bytes are decoded line by line: one bad byte sequence costs one row, not the whole file.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import LmkError

FORMATS = {".csv": "csv", ".tsv": "tsv", ".txt": "tsv", ".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl"}


@dataclass
class Row:
    line: int
    fields: dict[str, Any]


@dataclass
class BadRow:
    file: str
    line: int
    reason: str

    def render(self) -> str:
        return f"{self.file}:{self.line}: {self.reason}"


@dataclass
class ReadResult:
    rows: list[Row] = field(default_factory=list)
    bad: list[BadRow] = field(default_factory=list)


def detect_format(path: Path, fmt: str = "auto") -> str:
    if fmt != "auto":
        return fmt
    found = FORMATS.get(path.suffix.lower())
    if found is None:
        raise LmkError(
            f"cannot tell the format of {path.name} from its extension",
            where=str(path),
            fix="use a .csv, .tsv or .jsonl file, or set data.format",
        )
    return found


def _decoded_lines(path: Path, bad: list[BadRow]) -> Iterator[tuple[int, str]]:
    """Yield (line number, text) and record lines that are not valid UTF-8."""
    with open(path, "rb") as fh:
        for number, raw in enumerate(fh, start=1):
            if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            try:
                yield number, raw.decode("utf-8")
            except UnicodeDecodeError as e:
                bad.append(BadRow(str(path), number, f"undecodable bytes (not UTF-8) at byte {e.start}"))


def _open_checked(path: Path) -> None:
    if not path.exists():
        raise LmkError(f"data file not found: {path}", where=str(path), fix="check the path in the data section")
    if path.is_dir():
        raise LmkError(f"expected a file, got a directory: {path}", where=str(path),
                       fix="point at a .csv, .tsv or .jsonl file")


def _missing_columns(header: list[str], required: list[str], path: Path) -> None:
    missing = [c for c in required if c not in header]
    if missing:
        import difflib

        hints = [f"{m!r} (did you mean {difflib.get_close_matches(m, header, n=1)[0]!r}?)"
                 if difflib.get_close_matches(m, header, n=1) else repr(m) for m in missing]
        raise LmkError(
            f"column {', '.join(hints)} not found; the file has columns {header}",
            where=f"{path}:1 (header)",
            fix="set data.text_column / data.label_column to the right column names",
        )


def _read_delimited(path: Path, delimiter: str, required: list[str], result: ReadResult) -> None:
    lines = _decoded_lines(path, result.bad)
    first = next(lines, None)
    if first is None:
        raise LmkError(f"data file is empty: {path}", where=str(path), fix="add a header line and rows")
    quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
    header = [h.strip() for h in next(csv.reader([first[1]], delimiter=delimiter, quoting=quoting))]
    _missing_columns(header, required, path)
    pending: list[tuple[int, str]] = []
    for number, text in lines:
        pending.append((number, text))
        if delimiter == "," and text.count('"') % 2 == 1 and _open_quote("".join(t for _, t in pending)):
            continue  # a quoted field spans physical lines: keep reading
        start = pending[0][0]
        joined = "".join(t for _, t in pending)
        pending = []
        if not joined.strip():
            continue
        try:
            values = next(csv.reader(io.StringIO(joined), delimiter=delimiter, quoting=quoting))
        except csv.Error as e:
            result.bad.append(BadRow(str(path), start, f"malformed row: {e}"))
            continue
        if len(values) < len(header):
            result.bad.append(BadRow(str(path), start,
                                     f"has {len(values)} field(s), the header has {len(header)}"))
            continue
        result.rows.append(Row(start, dict(zip(header, values))))
    if pending:
        result.bad.append(BadRow(str(path), pending[0][0], "unterminated quoted field"))


def _open_quote(text: str) -> bool:
    return text.count('"') % 2 == 1


def _read_jsonl(path: Path, required: list[str], result: ReadResult) -> None:
    seen_any = False
    for number, text in _decoded_lines(path, result.bad):
        if not text.strip():
            continue
        seen_any = True
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as e:
            result.bad.append(BadRow(str(path), number, f"invalid JSON: {e.msg} at column {e.colno}"))
            continue
        if not isinstance(obj, dict):
            result.bad.append(BadRow(str(path), number, f"expected a JSON object, got {type(obj).__name__}"))
            continue
        missing = [c for c in required if c not in obj]
        if missing:
            result.bad.append(BadRow(str(path), number, f"missing key(s) {missing}; keys are {sorted(obj)}"))
            continue
        result.rows.append(Row(number, obj))
    if not seen_any and not result.bad:
        raise LmkError(f"data file is empty: {path}", where=str(path), fix="add one JSON object per line")


def read_rows(path: str | Path, required: list[str], fmt: str = "auto") -> ReadResult:
    """Read every row of a data file, keeping bad rows aside with their line and reason."""
    path = Path(path)
    _open_checked(path)
    fmt = detect_format(path, fmt)
    result = ReadResult()
    if fmt == "jsonl":
        _read_jsonl(path, required, result)
    else:
        _read_delimited(path, "\t" if fmt == "tsv" else ",", required, result)
    result.bad.sort(key=lambda b: b.line)
    return result
