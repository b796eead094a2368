"""Readers for token-tagged data (NER): CoNLL column files and JSONL ``{"tokens", "tags"}`` rows.

A sentence is the unit of validity: one malformed line (too few columns, an unknown or malformed
tag, bytes that are not UTF-8) rejects its whole sentence, because a sentence with a token missing
would silently misalign every tag after it. Each rejection names the file and the line.

Tags are BIO (IOB2) or IOB1 (the original CoNLL-2003 files, where ``B-`` only separates two
adjacent entities of one type). Both are normalised to BIO here, so seqeval, the model's labels
and the entity spans of ``predict`` all see one scheme.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import LmkError
from .files import data_path, open_data, sample_done, text_of, undecodable
from .readers import BadRow

JSONL_SUFFIXES = {".jsonl", ".json", ".ndjson"}
TAG_RE = re.compile(r"(?:O|[BI]-[^\s-][^\s]*)")
DOCSTART = "-DOCSTART-"


@dataclass
class TaggedSentence:
    tokens: list[str]
    tags: list[str]
    line: int  # first line of the sentence (CoNLL) or its JSONL line
    lines: list[int]  # the line of every token (all equal for JSONL)


@dataclass
class TaggedResult:
    sentences: list[TaggedSentence] = field(default_factory=list)
    bad: list[BadRow] = field(default_factory=list)


def tagged_format(path: Path, fmt: str = "auto") -> str:
    """``conll`` or ``jsonl``: JSON extensions are JSONL, any other file is read as CoNLL columns."""
    if fmt in ("conll", "jsonl"):
        return fmt
    if fmt == "tsv" or (fmt == "auto" and path.suffix.lower() not in JSONL_SUFFIXES):
        return "conll"
    if fmt == "auto":
        return "jsonl"
    raise LmkError(f"NER data cannot be read as {fmt}", where="data.format",
                   fix="use data.format: conll (token per line, tag column) or jsonl ({\"tokens\", \"tags\"} rows)")


# --------------------------------------------------------------------------------------------
# Tag schemes


def to_bio(tags: list[str]) -> list[str]:
    """IOB1 -> BIO: an ``I-X`` that does not continue an ``X`` entity starts one (``B-X``).

    On valid BIO this changes nothing, which is why ``tag_scheme: auto`` can always apply it.
    """
    out: list[str] = []
    prev = "O"
    for tag in tags:
        if tag.startswith("I-") and (prev == "O" or prev[2:] != tag[2:]):
            tag = "B-" + tag[2:]
        out.append(tag)
        prev = tag
    return out


def tag_problem(tags: list[str], scheme: str) -> tuple[int, str] | None:
    """(index, reason) of the first tag that is malformed, or that breaks strict BIO."""
    prev = "O"
    for i, tag in enumerate(tags):
        if not TAG_RE.fullmatch(tag):
            return i, (f"malformed tag {tag!r}: tags are O, B-TYPE or I-TYPE (BIO or IOB1; "
                       "BIOES/BILOU are not supported)")
        if scheme == "bio" and tag.startswith("I-") and (prev == "O" or prev[2:] != tag[2:]):
            return i, (f"tag {tag!r} starts an entity, which BIO does not allow (after {prev!r}); "
                       "the file looks like IOB1: set task.tag_scheme: iob1 (or auto)")
        prev = tag
    return None


def normalise(sentences: list[TaggedSentence], path: Path, scheme: str, known: set[str] | None,
              bad: list[BadRow]) -> list[TaggedSentence]:
    """Validate tags, convert to BIO and (for held-out data) check them against the training tags."""
    kept = []
    for s in sentences:
        problem = tag_problem(s.tags, scheme)
        if problem is None:
            s.tags = to_bio(s.tags)
            if known is not None:
                unknown = next((i for i, t in enumerate(s.tags) if t not in known), None)
                if unknown is not None:
                    problem = unknown, (f"tag {s.tags[unknown]!r} does not occur in the training data "
                                        f"(known: {', '.join(sorted(known))})")
        if problem is not None:
            i, reason = problem
            bad.append(BadRow(str(path), s.lines[i], f"token {s.tokens[i]!r}: {reason}"))
            continue
        kept.append(s)
    return kept


# --------------------------------------------------------------------------------------------
# File formats


def _read_conll(path: Path, tag_column: int, result: TaggedResult) -> None:
    tokens: list[str] = []
    tags: list[str] = []
    lines: list[int] = []
    broken: BadRow | None = None  # first problem of the sentence being read

    def flush() -> None:
        nonlocal broken
        if broken is not None:
            result.bad.append(broken)
        elif tokens:
            result.sentences.append(TaggedSentence(list(tokens), list(tags), lines[0], list(lines)))
        tokens.clear()
        tags.clear()
        lines.clear()
        broken = None

    need = tag_column + 1 if tag_column >= 0 else 1 - tag_column  # columns a line must have
    with open_data(path) as fh:
        for number, text in enumerate(text_of(fh), start=1):
            if sample_done(len(result.sentences) + len(result.bad), path):
                return
            problem = undecodable(text)
            if problem:
                broken = broken or BadRow(str(path), number, problem)
                continue
            parts = text.split()
            if not parts:
                flush()
                continue
            if parts[0] == DOCSTART:
                flush()
                continue
            if len(parts) < need:
                broken = broken or BadRow(
                    str(path), number, f"has {len(parts)} column(s); the tag column (task.tag_column="
                    f"{tag_column}) needs at least {need} (token first, tag in a later column)")
                lines.append(number)
                continue
            tokens.append(parts[0])
            tags.append(parts[tag_column])
            lines.append(number)
    flush()


def _jsonl_problem(obj: object) -> str | None:
    if not isinstance(obj, dict):
        return f"expected a JSON object, got {type(obj).__name__}"
    missing = [k for k in ("tokens", "tags") if k not in obj]
    if missing:
        return f"missing key(s) {missing}; NER rows are {{\"tokens\": [...], \"tags\": [...]}}"
    toks, tags = obj["tokens"], obj["tags"]
    if not isinstance(toks, list) or not all(isinstance(t, str) and t.strip() for t in toks) or not toks:
        return "\"tokens\" must be a non-empty list of non-empty strings"
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        return "\"tags\" must be a list of strings"
    if len(toks) != len(tags):
        return f"{len(toks)} tokens but {len(tags)} tags: every token needs exactly one tag"
    return None


def _read_jsonl(path: Path, result: TaggedResult) -> None:
    with open_data(path) as fh:
        for number, text in enumerate(text_of(fh), start=1):
            if not text.strip():
                continue
            if sample_done(len(result.sentences) + len(result.bad), path):
                return
            problem = undecodable(text)
            if problem:
                result.bad.append(BadRow(str(path), number, problem))
                continue
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as e:
                result.bad.append(BadRow(str(path), number, f"invalid JSON: {e.msg} at column {e.colno}"))
                continue
            problem = _jsonl_problem(obj)
            if problem:
                result.bad.append(BadRow(str(path), number, problem))
                continue
            toks = [t.strip() for t in obj["tokens"]]
            result.sentences.append(TaggedSentence(toks, [t.strip() for t in obj["tags"]], number,
                                                   [number] * len(toks)))


def read_tagged(path: str | Path, fmt: str = "auto", tag_column: int = -1, scheme: str = "auto",
                known: set[str] | None = None) -> TaggedResult:
    """Every sentence of a CoNLL or JSONL file with BIO tags; rejected sentences kept aside as bad rows.

    ``known`` (the training tag set) turns tags never seen in training into bad rows.
    """
    path = data_path(path)
    if tag_column == 0:
        raise LmkError("task.tag_column is 0, the token column", where="task.tag_column",
                       fix="the token is column 0; give the tag's column (1, 2, ...) or -1 for the last")
    if path.stat().st_size == 0:
        raise LmkError(f"data file is empty: {path}", where=str(path),
                       fix="add sentences: a token and its tag per line, a blank line between sentences")
    result = TaggedResult()
    if tagged_format(path, fmt) == "jsonl":
        _read_jsonl(path, result)
    else:
        _read_conll(path, tag_column, result)
    result.sentences = normalise(result.sentences, path, scheme, known, result.bad)
    result.bad.sort(key=lambda b: b.line)
    return result
