"""Where data comes from: a path checked before it is opened, and text decoded without losing rows.

Every reader (csv/tsv/jsonl rows, CoNLL, aligned text, the pretraining corpus) opens its files here,
so a NUL in a path, an unknown ``~user``, a directory, a FIFO (which would block forever) or a
device is one clear ``LmkError`` instead of a traceback or a hang. Text is decoded with
``surrogateescape``: a byte that is not UTF-8 becomes a marker the readers find and report for its
own row, instead of failing the whole file.

``sampling(n)`` lets ``lmkernel validate`` read the first ``n`` records of each file through the
very readers ``run`` uses, so both judge the data by the same rules.
"""

from __future__ import annotations

import io
import os
import re
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from ..errors import LmkError

_UNDECODABLE = re.compile("[\udc80-\udcff]")  # surrogateescape's stand-ins for bytes that are not UTF-8
_KINDS = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"))


def expand_path(value: str | Path, where: str | None = None) -> Path:
    """``value`` with ``~`` expanded; a NUL or an unknown ``~user`` is an LmkError, not a traceback."""
    text = str(value)
    if "\x00" in text:
        raise LmkError(f"the path {text!r} contains a NUL character", where=where or text.replace("\x00", "\\0"),
                       fix="remove the NUL (\\0) from the path")
    try:
        return Path(text).expanduser()
    except RuntimeError:
        user = text.split("/", 1)[0]
        raise LmkError(f"cannot expand {user!r} in {text!r}: no such user, or no home directory", where=where or text,
                       fix="write the path in full, or quote a file whose name starts with ~ as ./~name") from None


def _kind_problem(mode: int, path: Path, where: str) -> None:
    if stat.S_ISDIR(mode):
        raise LmkError(f"expected a file, got a directory: {path}", where=where,
                       fix="point at a data file (.csv, .tsv, .jsonl, CoNLL or .txt)")
    if not stat.S_ISREG(mode):
        kind = next((name for test, name in _KINDS if test(mode)), "not a regular file")
        raise LmkError(f"{path} is {kind}, not a regular file", where=where,
                       fix="save the data to a regular file and point at it (a pipe or device cannot be re-read)")


def data_path(value: str | Path, where: str | None = None) -> Path:
    """The path of an existing, regular data file, or an LmkError naming what is wrong with it."""
    path = expand_path(value, where)
    where = where or str(path)
    try:
        mode = path.stat().st_mode
    except (FileNotFoundError, NotADirectoryError):
        raise LmkError(f"data file not found: {path}", where=where, fix="check the path in the data section") from None
    except OSError as e:
        raise LmkError(f"cannot read data file {path}: {e.strerror or e}", where=where,
                       fix="check the path and its permissions") from None
    _kind_problem(mode, path, where)
    return path


@contextmanager
def open_data(value: str | Path, where: str | None = None) -> Iterator[BinaryIO]:
    """A checked data file opened for binary reading; a FIFO swapped in after the check still cannot block."""
    path = data_path(value, where)
    where = where or str(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as e:
        raise LmkError(f"cannot open data file {path}: {e.strerror or e}", where=where,
                       fix="check the path and its permissions") from None
    try:
        _kind_problem(os.fstat(fd).st_mode, path, where)
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    with os.fdopen(fd, "rb") as fh:
        yield fh


def text_of(fh: BinaryIO, newline: str | None = None) -> io.TextIOWrapper:
    """UTF-8 text (a leading BOM dropped), bad bytes kept as markers; ``newline=''`` keeps line endings for csv."""
    return io.TextIOWrapper(fh, encoding="utf-8-sig", errors="surrogateescape", newline=newline)


def undecodable(text: str) -> str | None:
    """The reason a decoded text holds bytes that are not UTF-8, or None."""
    m = _UNDECODABLE.search(text)
    return None if m is None else f"undecodable bytes (not UTF-8) at character {m.start() + 1}"


@dataclass
class Sample:
    """A bounded read: readers stop after ``limit`` records and note the files they did not finish."""

    limit: int
    cut: list[str] = field(default_factory=list)


_SAMPLE: ContextVar[Sample | None] = ContextVar("lmkernel_data_sample", default=None)


@contextmanager
def sampling(limit: int) -> Iterator[Sample]:
    """Within this block every reader reads at most ``limit`` records per file."""
    sample = Sample(limit)
    token = _SAMPLE.set(sample)
    try:
        yield sample
    finally:
        _SAMPLE.reset(token)


def sample_done(records: int, path: str | Path) -> bool:
    """True when a bounded read has its ``records``: the reader stops, and the file is noted as read in part."""
    sample = _SAMPLE.get()
    if sample is None or records < sample.limit:
        return False
    sample.cut.append(str(path))
    return True
