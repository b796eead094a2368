"""Fuzz the row readers with files the standard writers produce, then damaged on purpose.

Files are written by Python's csv writer (excel with several quoting modes; excel-tab unquoted, as
lmkernel reads TSV; LF, CRLF or CR line endings; with or without a BOM) or by json.dumps, with
fields holding delimiters, quotes, tabs, CR/LF and any Unicode (TSV: no tab or line break, which
that format cannot hold). Some rows are then damaged: an extra or a missing field, a byte
that is not UTF-8, a duplicate JSON key, a line that is not an object; some headers get a duplicate
name. Invariant: every row written is read back equal at its line, or reported as a bad row at its
line; or the whole read is an LmkError where the damage is to the file (header, empty JSONL).
Never a traceback, an extra row or a silently lost one.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass, field

import pytest
from fuzzkit import FAST, SLOW, Tally
from hypothesis import given
from hypothesis import strategies as st

from lmkernel.data.readers import read_rows
from lmkernel.errors import LmkError

BAD_BYTE = "\ue000"  # stands for a byte that is not UTF-8; never generated as text
FIELD = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters=BAD_BYTE + "\ue001")
                | st.sampled_from([",", "\t", '"', "\n", "\r", " ", "'", "\ufeff", "\x00"]), max_size=12)
NAMES = st.text("abcdefghij_", min_size=1, max_size=6)
DAMAGE = st.sampled_from(["none"] * 6 + ["extra", "missing", "bad_byte", "blank_before"])
QUOTING = {"minimal": csv.QUOTE_MINIMAL, "all": csv.QUOTE_ALL, "nonnumeric": csv.QUOTE_NONNUMERIC}


@dataclass
class Case:
    fmt: str
    data: bytes
    expected: dict[int, dict | None] = field(default_factory=dict)  # line -> fields, None: must be a bad row
    required: list[str] = field(default_factory=list)
    file_error: bool = False  # the whole file is damaged: an LmkError is the right answer


@st.composite
def cases(draw) -> Case:
    fmt = draw(st.sampled_from(["csv", "tsv", "jsonl"]))
    header = draw(st.lists(NAMES, min_size=1, max_size=4, unique=True))
    rows = draw(st.lists(st.lists(FIELD, min_size=len(header), max_size=len(header)), max_size=draw(
        st.sampled_from([3, 12, 40]))))
    damage = [draw(DAMAGE) for _ in rows]
    eol = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    bom = draw(st.booleans())
    dup = len(header) > 1 and draw(st.integers(0, 9)) == 0
    if dup:
        header[-1] = header[0]
    required = draw(st.lists(st.sampled_from(header), unique=True, max_size=len(header)))
    case = (_jsonl if fmt == "jsonl" else _delimited)(fmt, header, rows, damage, eol, draw)
    case.required, case.file_error = required, case.file_error or (dup and fmt != "jsonl")
    case.data = (b"\xef\xbb\xbf" if bom else b"") + case.data
    return case


def _encode(text: str) -> bytes:
    return text.encode("utf-8").replace(BAD_BYTE.encode("utf-8"), b"\xff")


def _delimited(fmt, header, rows, damage, eol, draw) -> Case:
    quoting = QUOTING[draw(st.sampled_from(sorted(QUOTING)))]
    if eol != "\r\n":  # a writer quotes the characters of its own line ending only: quote every field
        quoting = csv.QUOTE_ALL
    if fmt == "tsv":  # unquoted TSV cannot hold a tab or a line break; a quote is a plain character
        quoting = csv.QUOTE_NONE
        rows = [[re.sub("[\t\r\n]", " ", v) for v in values] for values in rows]
    out = io.StringIO()
    writer = csv.writer(out, dialect="excel-tab" if fmt == "tsv" else "excel", quoting=quoting, lineterminator=eol,
                        quotechar="\ue001" if fmt == "tsv" else '"')
    writer.writerow(header)
    case = Case(fmt, b"")
    breaks = "\r" if eol == "\r" else "\n"
    for values, how in zip(rows, damage):
        values = list(values)
        if how == "missing" and len(values) == 1:
            how = "extra"  # a row with no field left is a blank line: nothing to tell apart from one
        if how == "blank_before":
            out.write(eol)
        line = out.getvalue().count(breaks) + 1
        if how == "extra":
            values.append("x")
        elif how == "missing":
            values.pop()
        elif how == "bad_byte":
            values[draw(st.integers(0, len(values) - 1))] += BAD_BYTE
        if fmt == "tsv" and values == [""]:
            values = ["-"]  # unquoted, it would be a blank line
        writer.writerow(values)
        case.expected[line] = None if how in ("extra", "missing", "bad_byte") else dict(zip(header, values))
    case.data = _encode(out.getvalue())
    return case


def _jsonl(fmt, header, rows, damage, eol, draw) -> Case:
    case = Case(fmt, b"", file_error=not rows)
    lines = []
    for values, how in zip(rows, damage):
        obj = dict(zip(header, values))
        if how == "blank_before":
            lines.append("")
        text = json.dumps(obj, ensure_ascii=draw(st.booleans()))
        if how == "extra":  # a duplicate key: which value is meant cannot be known
            text = text[:-1] + (", " if obj else "") + json.dumps(header[0]) + ': "dup"}'
        elif how == "missing":
            text = json.dumps(list(obj.values()))  # not an object
        elif how == "bad_byte":
            text = text[:-1] + (", " if obj else "") + '"zz": "' + BAD_BYTE + '"}'
        lines.append(text)
        case.expected[len(lines)] = None if how in ("extra", "missing", "bad_byte") else obj
    case.data = _encode("".join(line + eol for line in lines))
    if not any(line.strip() for line in lines):
        case.file_error = True
    return case


def check(case: Case, tmp_path, tally: Tally) -> None:
    """Read the case back; record a failure for any row not read back equal or reported."""
    tally.tried += 1
    path = tmp_path / f"data.{case.fmt}"
    path.write_bytes(case.data)
    try:
        result = read_rows(path, case.required)
    except LmkError as e:
        tally.clear_errors += 1
        if not case.file_error:
            tally.failures.append(f"unexpected LmkError {e.what!r} on {case.data[:300]!r}")
        return
    except Exception as e:  # noqa: BLE001 - the invariant: no traceback of any kind
        tally.failures.append(f"{type(e).__name__}: {e} on {case.data[:300]!r}")
        return
    if case.file_error:
        tally.failures.append(f"damaged file read without an error: {case.data[:300]!r}")
        return
    got = {row.line: row.fields for row in result.rows}
    bad = {b.line for b in result.bad}
    for line, fields in case.expected.items():
        if fields is None and line not in bad:
            tally.failures.append(f"damaged row at line {line} not reported: {got.get(line)!r} in {case.data!r}")
        elif fields is not None and got.get(line) != fields:
            tally.failures.append(f"row at line {line}: wrote {fields!r}, read {got.get(line)!r} "
                                  f"(bad {sorted(bad)}) in {case.data!r}")
    extra = (set(got) | bad) - set(case.expected)
    if extra:
        tally.failures.append(f"rows at lines {sorted(extra)} were never written: {case.data!r}")
    tally.accepted += 1


@FAST
@given(case=cases())
def test_rows_read_back_or_reported(case, tmp_path_factory):
    tally = Tally("data")
    check(case, tmp_path_factory.mktemp("fuzz"), tally)
    assert not tally.failures, tally.failures[0]


SLOW_TALLY = Tally("data")


@pytest.mark.slow
def test_slow_rows_read_back_or_reported(tmp_path_factory):
    @SLOW
    @given(case=cases())
    def run(case):
        check(case, tmp_path_factory.mktemp("fuzz", numbered=True), SLOW_TALLY)

    run()
    print(SLOW_TALLY.line())
    assert not SLOW_TALLY.failures, SLOW_TALLY.failures[:3]
