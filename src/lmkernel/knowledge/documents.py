"""Documents for the index: .txt/.md files, .jsonl and .csv rows, and folders of them.

Every input that cannot be read (empty, binary, undecodable, over the size cap, a bad JSON line, a row
without text, a repeated id) is either a counted ``Skip`` naming its file and line (``on_bad="skip"``)
or an ``LmkError`` naming them (``on_bad="error"``): nothing is dropped silently.
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

TEXT_SUFFIXES = (".txt", ".md")
SUFFIXES = TEXT_SUFFIXES + (".jsonl", ".csv")
MAX_FILE_BYTES = 50 * 1024 * 1024  # a larger file is almost always a dump or a mistake, not a document
ON_BAD = ("skip", "error")


@dataclass
class Document:
    """One document: its id (given, or ``file:line`` / the file name when it has none) and its text.

    ``line`` is the line of ``file`` where the text starts, so chunk sources can point into the file;
    ``named`` says whether the id came from the data (then it is the source users see).
    """

    doc_id: str
    text: str
    file: str
    line: int = 1
    meta: dict[str, Any] = field(default_factory=dict)
    named: bool = False
    own_lines: bool = True  # the text's lines are the file's lines (a .txt/.md file, not a JSON or CSV row)


@dataclass
class Skip:
    """An input that was not indexed, and why."""

    file: str
    line: int | None
    reason: str

    def render(self) -> str:
        return f"{self.file}{'' if self.line is None else f':{self.line}'}: {self.reason}"


class _Bad:
    """Collects skips, or raises on the first one when ``on_bad == "error"``."""

    def __init__(self, on_bad: str):
        if on_bad not in ON_BAD:
            raise LmkError(f"on_bad must be one of {', '.join(ON_BAD)}, not {on_bad!r}", where="--on-bad")
        self.on_bad = on_bad
        self.skips: list[Skip] = []

    def __call__(self, file: Path | str, line: int | None, reason: str) -> None:
        skip = Skip(str(file), line, reason)
        if self.on_bad == "error":
            where = str(file) if line is None else f"{file}:{line}"
            raise LmkError(f"cannot index this input: {reason}", where=where,
                           fix="fix or remove it, or pass --on-bad skip to index the rest and count it")
        self.skips.append(skip)


def expand_paths(paths: list[str | Path]) -> list[Path]:
    """The files ``paths`` name: files as given, folders searched recursively for the known suffixes."""
    files: list[Path] = []
    for raw in paths:
        path = Path(raw).expanduser()
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES))
        elif path.is_file():
            if path.suffix.lower() not in SUFFIXES:
                raise LmkError(f"{path} is not a document type the index reads", where=str(path),
                               fix=f"give {', '.join(SUFFIXES)} files or a folder of them")
            files.append(path)
        else:
            raise LmkError(f"no such file or folder: {path}", where=str(raw), fix="check the path")
    return files


def _decode(path: Path, bad: _Bad, max_bytes: int) -> str | None:
    """The file's text, or None after reporting why it cannot be read."""
    size = path.stat().st_size
    if size > max_bytes:
        bad(path, None, f"larger than the {max_bytes // (1024 * 1024)} MiB cap ({size} bytes); split it")
        return None
    data = path.read_bytes()
    if b"\x00" in data[:8192]:
        bad(path, None, "binary file (NUL bytes)")
        return None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        bad(path, data.count(b"\n", 0, e.start) + 1, f"bytes that are not UTF-8 at offset {e.start}")
        return None
    if not text.strip():
        bad(path, None, "empty file")
        return None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _record(row: dict, where: tuple[Path, int], fields: tuple[str, str], bad: _Bad) -> Document | None:
    """A document from one JSON object or CSV row (text and id fields named by ``fields``)."""
    path, line = where
    text_field, id_field = fields
    text = row.get(text_field)
    if not isinstance(text, str) or not text.strip():
        bad(path, line, f"no text in field {text_field!r}" if text_field not in row else "empty or non-string text")
        return None
    given = row.get(id_field)
    named = given not in (None, "")
    doc_id = str(given) if named else f"{path.name}:{line}"
    meta = {k: v for k, v in row.items() if k not in (text_field, id_field)}
    return Document(doc_id, text.replace("\r\n", "\n"), path.name, line, meta, named, own_lines=False)


def _jsonl(path: Path, text: str, fields: tuple[str, str], bad: _Bad) -> Iterator[Document]:
    for n, raw in enumerate(text.split("\n"), start=1):
        if not raw.strip():
            continue
        try:
            row = json.loads(raw)
        except json.JSONDecodeError as e:
            bad(path, n, f"not valid JSON ({e.msg})")
            continue
        if not isinstance(row, dict):
            bad(path, n, "a JSON line must be an object")
            continue
        doc = _record(row, (path, n), fields, bad)
        if doc is not None:
            yield doc


def _csv(path: Path, text: str, fields: tuple[str, str], bad: _Bad) -> Iterator[Document]:
    reader = csv.DictReader(io.StringIO(text))
    if fields[0] not in (reader.fieldnames or []):
        bad(path, 1, f"no column {fields[0]!r} (columns: {', '.join(reader.fieldnames or [])}); use --text-field")
        return
    for row in reader:
        line = reader.line_num  # the row's last line; rows rarely span lines
        if None in row:
            bad(path, line, "more cells than header columns")
            continue
        doc = _record(row, (path, line), fields, bad)
        if doc is not None:
            yield doc


def read_documents(paths: list[str | Path], text_field: str = "text", id_field: str = "id",
                   on_bad: str = "skip", max_bytes: int = MAX_FILE_BYTES) -> tuple[list[Document], list[Skip]]:
    """Every document under ``paths`` in file order, and the inputs skipped (see the module doc)."""
    bad = _Bad(on_bad)
    files = expand_paths(paths)
    docs: list[Document] = []
    seen: set[str] = set()
    for path in files:
        text = _decode(path, bad, max_bytes)
        if text is None:
            continue
        suffix = path.suffix.lower()
        if suffix == ".jsonl":
            found = list(_jsonl(path, text, (text_field, id_field), bad))
        elif suffix == ".csv":
            found = list(_csv(path, text, (text_field, id_field), bad))
        else:
            found = [Document(path.name if path.name not in seen else str(path), text, path.name)]
        for doc in found:
            if doc.doc_id in seen:
                bad(path, doc.line, f"repeated document id {doc.doc_id!r} (the first one is kept)")
                continue
            seen.add(doc.doc_id)
            docs.append(doc)
    return docs, bad.skips
