"""The pretraining corpus as a stream: files -> texts -> token ids -> fixed-length blocks -> batches.

Nothing here holds the corpus in memory. Files are read line by line, texts are tokenized in
chunks of ``CHUNK_TEXTS`` texts or ``CHUNK_CHARS`` characters, packed into blocks of exactly ``block``
tokens, and blocks pass through a shuffle buffer of ``shuffle_buffer`` blocks. Memory is therefore
bounded by ``shuffle_buffer x block`` token ids plus one chunk of texts, whatever the corpus size
(tests/pretrain/test_pretrain_memory.py checks that RSS stays flat).

What one document is in a text file is ``data.document_boundary``: a line, a paragraph (lines up
to a blank line: ``blank_line``, what ``auto`` picks for a file with paragraphs, so a book is not
cut after every line) or the whole file; a document longer than ``MAX_DOC_CHARS`` is cut at a line
break. Each line of a .jsonl file is an object whose ``text_column`` key holds one document.
Documents are separated inside blocks by the tokenizer's separator (EOS for decoders, [SEP] for
encoders); the tail shorter than one block at the end of a pass is dropped. Bad input is never a
crash: empty files are skipped and counted, binary files and undecodable lines stop with a clear
error or are skipped and counted (``data.on_bad_rows``).
"""

from __future__ import annotations

import glob
import json
import random
import re
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..data.files import data_path, expand_path, open_data, text_of, undecodable
from ..data.readers import BadRow
from ..errors import LmkError

CORPUS_SUFFIXES = (".txt", ".jsonl", ".tokens")  # what a folder contributes; explicit files may be anything
JSON_SUFFIXES = (".jsonl", ".json")
CHUNK_TEXTS = 256  # texts tokenized per call (the fast tokenizer batches them in Rust)
SHUFFLE_BUFFER = 2048  # blocks held for shuffling: 2048 x 128 ids ~ 10 MB
KEEP_BAD = 100  # bad lines remembered for the report (all are counted)
HEAD_BYTES = 8192  # read first: an empty or binary file is skipped, and auto picks the document boundary
MAX_DOC_CHARS = 1 << 20  # a longer paragraph or file is cut at a line break: the memory bound of one document
CHUNK_CHARS = 1 << 22  # a tokenizer call takes at most CHUNK_TEXTS texts or about this many characters
_PARAGRAPH_BREAK = re.compile(rb"\S[^\S\r\n]*(?>\r\n|\r|\n)[^\S\r\n]*(?>\r\n|\r|\n)\s*\S")  # CRLF is one break


@dataclass
class CorpusStats:
    """What one pass over the corpus saw: counted, so skips show up in the report."""

    files: int = 0
    texts: int = 0
    tokens: int = 0
    blocks: int = 0
    skipped_files: list[tuple[str, str]] = field(default_factory=list)
    bad_lines: list[BadRow] = field(default_factory=list)
    bad_count: int = 0
    boundaries: dict[str, int] = field(default_factory=dict)  # document boundary -> files read with it

    def bad(self, row: BadRow) -> None:
        self.bad_count += 1
        if len(self.bad_lines) < KEEP_BAD:
            self.bad_lines.append(row)


def resolve_files(pattern: Path | str, key: str) -> list[Path]:
    """The corpus files named by a file, a glob (``corpus/*.txt``, ``**``) or a folder."""
    path = expand_path(pattern, key)
    text = str(path)
    if any(ch in text for ch in "*?["):
        files = sorted(Path(p) for p in glob.glob(text, recursive=True) if Path(p).is_file())
    elif path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in CORPUS_SUFFIXES)
    elif path.exists():
        files = [data_path(path, key)]  # a FIFO or a device is refused here, before anything blocks on it
    else:
        raise LmkError(f"corpus not found: {text}", where=key,
                       fix="give a .txt/.jsonl file, a glob such as corpus/*.txt, or a folder holding such files")
    if not files:
        raise LmkError(f"no corpus files in {text}", where=key,
                       fix=f"a folder contributes its {', '.join(CORPUS_SUFFIXES)} files; a glob must match files")
    return files


def _skip_or_fail(what: str, where: str, on_bad_rows: str) -> None:
    if on_bad_rows == "error":
        raise LmkError(what, where=where, fix="fix or remove it, or set data.on_bad_rows: skip to skip bad files "
                       "and lines (they are counted in the report)")


def _json_text(line: str, text_column: str) -> tuple[str | None, str | None]:
    """(text, None) or (None, reason) for one .jsonl line."""
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as e:
        return None, f"invalid JSON: {e.msg}"
    if not isinstance(obj, dict):
        return None, "a JSON line must be an object"
    value = obj.get(text_column)
    if not isinstance(value, str):
        return None, f"no string {text_column!r} key (set data.text_column)"
    return value, None


def boundary_of(path: Path, boundary: str, head: bytes) -> str:
    """The document boundary one file gets. A .jsonl row is always one document; ``auto`` gives a text file
    ``blank_line`` when its head holds a blank line between text (paragraphs, as in a book) and ``line``
    otherwise (a corpus of one document per line)."""
    if path.suffix.lower() in JSON_SUFFIXES:
        return "row"
    if boundary != "auto":
        return boundary
    return "blank_line" if _PARAGRAPH_BREAK.search(head) else "line"


def iter_texts(files: list[Path], text_column: str, on_bad_rows: str, stats: CorpusStats,
               boundary: str = "auto") -> Iterator[str]:
    """Each document of each file, in order, with bad files/lines handled per ``on_bad_rows``."""
    for path in files:
        with open_data(path) as fh:
            head = fh.read(HEAD_BYTES)
            if not head.strip():
                stats.skipped_files.append((str(path), "empty file"))
                continue
            if b"\x00" in head:
                _skip_or_fail(f"{path} looks like a binary file (it contains NUL bytes), not text", str(path),
                              on_bad_rows)
                stats.skipped_files.append((str(path), "binary file"))
                continue
            stats.files += 1
            fh.seek(0)
            mode = boundary_of(path, boundary, head)
            stats.boundaries[mode] = stats.boundaries.get(mode, 0) + 1
            for text in _documents(path, text_of(fh), mode, text_column, on_bad_rows, stats):
                stats.texts += 1
                yield text


def boundary_used(boundary: str, stats: CorpusStats) -> str:
    """What the report says: the setting and, per boundary, how many files were read with it."""
    files = ", ".join(f"{mode} ({n} file{'s' * (n != 1)})" for mode, n in sorted(stats.boundaries.items()))
    if not files:
        return boundary
    return f"auto: {files}" if boundary == "auto" else files


def _documents(path: Path, lines: Iterable[str], mode: str, text_column: str, on_bad_rows: str,
               stats: CorpusStats) -> Iterator[str]:
    """The documents of one file: a row, a line, a paragraph or the whole file (cut at MAX_DOC_CHARS)."""
    held: list[str] = []
    size = 0
    for lineno, line in enumerate(lines, 1):
        reason = undecodable(line)
        if reason is None and mode == "row" and line.strip():
            line, reason = _json_text(line, text_column)
        if reason is not None:
            _skip_or_fail(f"{'undecodable' if 'UTF-8' in reason else 'bad'} line in {path}: {reason}",
                          f"{path} line {lineno}", on_bad_rows)
            stats.bad(BadRow(str(path), lineno, reason))
            if mode == "blank_line":  # a hole ends the paragraph: text is never glued across it
                yield from _joined(held)
                held, size = [], 0
            continue
        if mode in ("row", "line"):
            yield from _joined([line])
            continue
        if mode == "blank_line" and not line.strip():
            yield from _joined(held)
            held, size = [], 0
            continue
        if size + len(line) > MAX_DOC_CHARS and held:
            yield from _joined(held)
            held, size = [], 0
        held.append(line.rstrip("\n"))
        size += len(line)
    yield from _joined(held)


def _joined(lines: list[str]) -> Iterator[str]:
    text = "\n".join(lines).strip()
    if text:
        yield text


def holdout(texts: Iterable[str], ratio: float, seed: int, held: bool) -> Iterator[str]:
    """A deterministic ``ratio`` share of the documents (``held``) or the rest, by a hash of their index."""
    for i, text in enumerate(texts):
        if (zlib.crc32(f"{seed}:{i}".encode()) / 2**32 < ratio) == held:
            yield text


@dataclass
class Packing:
    """How documents become blocks: ``prefix`` + body + ``suffix`` = ``block`` tokens, documents
    separated by ``sep`` inside the body (encoders: [CLS] ... [SEP]; decoders: no frame, EOS between)."""

    block: int
    sep: int
    prefix: list[int] = field(default_factory=list)
    suffix: list[int] = field(default_factory=list)

    @property
    def body(self) -> int:
        return self.block - len(self.prefix) - len(self.suffix)


def pack(docs: Iterable[tuple[list[int], list[int] | None]], p: Packing) -> Iterator[dict[str, list[int]]]:
    """Concatenate (ids, word_starts) documents with separators and cut fixed blocks; the tail is dropped."""
    if p.body < 1:
        raise LmkError(f"data.max_length {p.block} leaves no room for text in a block", where="data.max_length",
                       fix="use data.max_length of 16 or more")
    ids: list[int] = []
    starts: list[int] | None = None
    for doc, doc_starts in docs:
        ids.extend(doc)
        ids.append(p.sep)
        if doc_starts is not None:
            starts = starts if starts is not None else []
            starts.extend(doc_starts)
            starts.append(1)
        while len(ids) >= p.body:
            feature = {"input_ids": p.prefix + ids[:p.body] + p.suffix}
            if starts is not None:
                feature["word_starts"] = [1] * len(p.prefix) + starts[:p.body] + [1] * len(p.suffix)
                starts = starts[p.body:]
            ids = ids[p.body:]
            yield feature


def shuffled(blocks: Iterable[Any], size: int, rng: random.Random) -> Iterator[Any]:
    """Approximate shuffle through a buffer of ``size`` items (memory bounded by the buffer)."""
    buf: list[Any] = []
    for item in blocks:
        if len(buf) < size:
            buf.append(item)
            continue
        j = rng.randrange(size)
        buf[j], item = item, buf[j]
        yield item
    rng.shuffle(buf)
    yield from buf


class BlockStream:
    """Training batches streamed from the corpus (a ``training.loop.BatchSource``).

    ``make_texts()`` starts a fresh pass over the documents; ``encode(texts)`` turns a chunk of texts
    into (ids, word_starts) pairs. The order of an epoch depends only on (seed, epoch), so a resumed
    run re-reads the corpus and skips exactly the batches it has done.
    """

    def __init__(self, make_texts: Callable[[CorpusStats], Iterable[str]],
                 encode: Callable[[list[str]], list[tuple[list[int], list[int] | None]]], packing: Packing,
                 batch_size: int, seed: int, world_size: int = 1, rank: int = 0,
                 shuffle_buffer: int = SHUFFLE_BUFFER):
        self.make_texts, self.encode, self.packing = make_texts, encode, packing
        self.batch_size, self.seed, self.world, self.rank = batch_size, seed, world_size, rank
        self.shuffle_buffer = shuffle_buffer
        self.stats: CorpusStats | None = None  # of the counting pass
        self._count: int | None = None

    def blocks(self, stats: CorpusStats) -> Iterator[dict[str, list[int]]]:
        """One pass: every block of the corpus, in corpus order."""

        def docs() -> Iterator[tuple[list[int], list[int] | None]]:
            chunk: list[str] = []
            chars = 0
            for text in self.make_texts(stats):
                chunk.append(text)
                chars += len(text)
                if len(chunk) == CHUNK_TEXTS or chars >= CHUNK_CHARS:
                    yield from self._encoded(chunk, stats)
                    chunk, chars = [], 0
            if chunk:
                yield from self._encoded(chunk, stats)

        for block in pack(docs(), self.packing):
            stats.blocks += 1
            yield block

    def _encoded(self, chunk: list[str], stats: CorpusStats):
        pairs = self.encode(chunk)
        stats.tokens += sum(len(ids) for ids, _ in pairs)
        return pairs

    def num_batches(self) -> int:
        """Batches per epoch per process, from one counting pass (tokenizing is far cheaper than training)."""
        if self._count is None:
            stats = CorpusStats()
            for _ in self.blocks(stats):
                pass
            self.stats = stats
            batches = stats.blocks // self.batch_size
            self._count = batches // self.world
            if self._count == 0:
                raise LmkError(
                    f"the training corpus makes {stats.blocks} block(s) of {self.packing.block} tokens "
                    f"({stats.tokens} tokens in {stats.texts} texts), fewer than one batch of "
                    f"{self.batch_size * self.world}", where="data.train",
                    fix="add text, or lower train.batch_size or data.max_length")
        return self._count

    def iter_batches(self, epoch: int, start: int) -> Iterator[list[dict[str, list[int]]]]:
        total = self.num_batches()
        rng = random.Random(self.seed * 1_000_003 + epoch)
        batch: list[dict[str, list[int]]] = []
        k = 0  # batch number across processes; process r takes every world-th batch
        for block in shuffled(self.blocks(CorpusStats()), self.shuffle_buffer, rng):
            batch.append(block)
            if len(batch) < self.batch_size:
                continue
            mine, k = k, k + 1
            if mine % self.world == self.rank:
                index = mine // self.world
                if index >= total:
                    return
                if index >= start:
                    yield batch
            batch = []
