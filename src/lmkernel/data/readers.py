"""Readers for CSV, TSV and JSONL files that never lose track of where a row came from.

Each row keeps the 1-based physical line it starts on, so every complaint can name file and line.
CSV is parsed by the csv module's ``excel`` dialect in strict mode, so a quoted field may hold
commas, quotes ("") and line breaks; TSV by ``excel-tab`` without quoting (as GLUE ships it: a
quote is a character, a field cannot hold a tab or a line break). Lines end in LF, CRLF or CR. A
record the parser rejects, or one with more or fewer fields than the header, is a bad row:
reported, never merged into its neighbour. A byte that is not UTF-8 costs its own row, not the whole file.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import LmkError
from .files import data_path, open_data, sample_done, text_of, undecodable

HEAD_BYTES = 1 << 16  # read to find the file's line ending
FIELD_LIMIT = 1 << 27  # characters in one field: csv's default (131072) would reject a long document
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


def _line_end(fh: Any) -> str:
    """How this file ends its lines: "\\r" (old Mac) or "\\n" (with or without "\\r" before it).

    Splitting on that alone makes a stray break of the other kind inside an unquoted field a parse
    error for its row, instead of a silent split of the row in two (csv writers that do not quote a
    lone CR in a LF file exist)."""
    head = fh.read(HEAD_BYTES)
    fh.seek(0)
    i = next((k for k, b in enumerate(head) if b in b"\r\n"), None)
    return "\r" if i is not None and head[i] == 13 and head[i + 1:i + 2] not in (b"\n", b"") else "\n"


def _records(reader: Any, path: Path, result: ReadResult) -> Iterator[tuple[int, list[str]]]:
    """(start line, fields) of each record csv can parse; one it cannot is a bad row, and reading goes on."""
    while True:
        start = reader.line_num + 1
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            end = reader.line_num
            why = str(e) if "new-line character" not in str(e) else "a line break inside an unquoted field"
            span = f" (lines {start}-{end} read as one record)" if end > start else ""
            result.bad.append(BadRow(str(path), start, f"malformed row: {why}{span}; a field holding the delimiter, "
                                     "a quote or a line break must be quoted whole, its quotes doubled (\"\")"))
            continue
        if not values:
            continue  # a blank line
        yield start, values


def _header(records: Iterator[tuple[int, list[str]]], path: Path) -> list[str]:
    """The first record, checked: an unreadable header stops the read."""
    first = next(records, None)
    if first is None:
        raise LmkError(f"data file is empty: {path}", where=str(path), fix="add a header line and rows")
    line, values = first
    bad = undecodable("".join(values))
    if bad:
        raise LmkError(f"the header has {bad}", where=f"{path}:{line} (header)", fix="save the file as UTF-8")
    header = [h.strip() for h in values]
    seen: dict[str, int] = {}
    for i, name in enumerate(header, 1):
        if name and name in seen:
            raise LmkError(f"column {name!r} appears twice in the header (columns {seen[name]} and {i})",
                           where=f"{path}:{line} (header)", fix="rename one of the two columns")
        seen.setdefault(name, i)
    return header


def _read_delimited(path: Path, fh: Any, delimiter: str, required: list[str], result: ReadResult) -> None:
    """csv's own dialects, strict: a record it cannot parse is a bad row, never merged with the next."""
    csv.field_size_limit(max(csv.field_size_limit(), FIELD_LIMIT))
    lines = text_of(fh, newline=_line_end(fh))
    if delimiter == "\t":  # TSV as GLUE ships it: no quoting, a quote is a character like any other
        reader = csv.reader(lines, dialect="excel-tab", quoting=csv.QUOTE_NONE, strict=True)
    else:
        reader = csv.reader(lines, dialect="excel", strict=True)
    records = _records(reader, path, result)
    header = _header(records, path)
    _missing_columns(header, required, path)
    for taken, (line, values) in enumerate(records):
        if sample_done(taken, path):
            return
        problem = undecodable("".join(values))
        if problem is None and len(values) != len(header):
            problem = f"has {len(values)} field(s), the header has {len(header)}"
            if len(values) > len(header):
                problem += ("; a TSV text cannot hold a tab (use CSV or JSONL)" if delimiter == "\t"
                            else "; a field holding a comma must be quoted")
        if problem is not None:
            result.bad.append(BadRow(str(path), line, problem))
            continue
        result.rows.append(Row(line, dict(zip(header, values))))


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise ValueError(f"key {key!r} appears twice in the object")
        obj[key] = value
    return obj


def _read_jsonl(path: Path, fh: Any, required: list[str], result: ReadResult) -> None:
    """One JSON object per line; CR, LF and CRLF all end a line (JSON text never holds a raw line break)."""
    seen_any = False
    taken = 0
    for number, text in enumerate(text_of(fh), start=1):
        if not text.strip():
            continue
        seen_any = True
        if sample_done(taken, path):
            return
        taken += 1
        problem = undecodable(text)
        if problem:
            result.bad.append(BadRow(str(path), number, problem))
            continue
        try:
            obj = json.loads(text, object_pairs_hook=_unique_keys)
        except json.JSONDecodeError as e:
            result.bad.append(BadRow(str(path), number, f"invalid JSON: {e.msg} at column {e.colno}"))
            continue
        except (ValueError, RecursionError) as e:
            result.bad.append(BadRow(str(path), number, f"invalid JSON: {e}"[:300]))
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
    path = data_path(path)
    fmt = detect_format(path, fmt)
    result = ReadResult()
    with open_data(path) as fh:
        if fmt == "jsonl":
            _read_jsonl(path, fh, required, result)
        else:
            _read_delimited(path, fh, "\t" if fmt == "tsv" else ",", required, result)
    result.bad.sort(key=lambda b: b.line)
    return result
