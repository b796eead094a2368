"""Documents → chunks: whole paragraphs while they fit, else sentences (English and Chinese), with overlap.

A chunk is a slice of its document's text (formatting kept) with the line it starts on. Sizes are in
characters, but a Han character costs ``HAN_COST``: it carries about as much as a short English word, and
an encoder spends about one token on it, so a budget fits a similar amount of meaning in both scripts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ..evaluation.textmetrics import HAN  # the project's one Han range
from .documents import Document

CHUNK_CHARS = 500  # about 110 English tokens: one or two paragraphs, well under an encoder's 256-token cut
OVERLAP = 100  # trailing sentences of a chunk repeated at the start of the next (same units as CHUNK_CHARS)
HAN_COST = 2
_HAN = re.compile(f"[{HAN}]")
_PARAGRAPH = re.compile(r"\n[ \t]*\n\s*")
# a sentence ends at . ! ? (then space) or at Chinese 。！？；… (closing quotes kept with it)
_SENTENCE_END = re.compile(r"(?:[.!?]+[\"')\]]*(?=\s)|[。！？；…]+[”’」』）)]*)\s*")


@dataclass
class Chunk:
    """A piece of a document as the index stores it."""

    chunk_id: str
    doc_id: str
    text: str
    source: str
    line: int
    meta: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"chunk_id": self.chunk_id, "doc_id": self.doc_id, "text": self.text, "source": self.source,
                "line": self.line, "meta": self.meta}


def cost(text: str) -> int:
    """The budget ``text`` uses: its characters, with Han characters counted ``HAN_COST`` times."""
    return len(text) + (HAN_COST - 1) * len(_HAN.findall(text))


def han_share(text: str) -> float:
    """The share of non-space characters that are Han: tells Chinese text from English."""
    letters = sum(1 for ch in text if not ch.isspace())
    return len(_HAN.findall(text)) / letters if letters else 0.0


def _spans(text: str, pattern: re.Pattern, start: int, end: int) -> list[tuple[int, int]]:
    """``text[start:end]`` cut after each match of ``pattern`` into (start, end) spans, blanks dropped."""
    spans, pos = [], start
    for m in pattern.finditer(text, start, end):
        if m.end() > pos:
            spans.append((pos, m.end()))
            pos = m.end()
    if pos < end:
        spans.append((pos, end))
    return [(a, b) for a, b in spans if text[a:b].strip()]


def _hard_cut(text: str, a: int, b: int, budget: int) -> list[tuple[int, int]]:
    """A sentence longer than the budget, cut into pieces that fit (at a space when one is near)."""
    out = []
    while a < b:
        end, used = a, 0
        while end < b and used + cost(text[end]) <= budget:
            used += cost(text[end])
            end += 1
        end = max(end, a + 1)
        space = text.rfind(" ", a, end)
        if end < b and space > a + (end - a) // 2:
            end = space + 1
        out.append((a, end))
        a = end
    return out


def units(text: str, budget: int) -> list[tuple[int, int]]:
    """Paragraphs that fit the budget, else their sentences (cut further when still too long)."""
    out = []
    for a, b in _spans(text, _PARAGRAPH, 0, len(text)):
        if cost(text[a:b]) <= budget:
            out.append((a, b))
            continue
        for sa, sb in _spans(text, _SENTENCE_END, a, b):
            out.extend([(sa, sb)] if cost(text[sa:sb]) <= budget else _hard_cut(text, sa, sb, budget))
    return out


def pack(text: str, chunk_chars: int = CHUNK_CHARS, overlap: int = OVERLAP) -> list[tuple[int, int]]:
    """(start, end) of each chunk: consecutive units packed up to ``chunk_chars``; each new chunk starts
    with the previous chunk's trailing units that fit in ``overlap``."""
    spans = units(text, chunk_chars)
    chunks: list[tuple[int, int]] = []
    i = 0
    while i < len(spans):
        j = i + 1
        while j < len(spans) and cost(text[spans[i][0]:spans[j][1]].strip()) <= chunk_chars:
            j += 1
        chunks.append((spans[i][0], spans[j - 1][1]))
        if j >= len(spans):
            break
        back = j
        while back - 1 > i and cost(text[spans[back - 1][0]:spans[j - 1][1]]) <= overlap:
            back -= 1
        i = back
    return chunks


def chunk_document(doc: Document, chunk_chars: int = CHUNK_CHARS, overlap: int = OVERLAP) -> list[Chunk]:
    """The chunks of one document, with ids ``doc_id#n`` and sources pointing at their lines."""
    out = []
    for n, (a, b) in enumerate(pack(doc.text, chunk_chars, overlap)):
        body = doc.text[a:b].strip()
        lead = len(doc.text[a:b]) - len(doc.text[a:b].lstrip())
        line = doc.line + doc.text.count("\n", 0, a + lead) if doc.own_lines else doc.line
        source = doc.doc_id if doc.named else f"{doc.file}:{line}"
        out.append(Chunk(f"{doc.doc_id}#{n}", doc.doc_id, body, source, line, dict(doc.meta)))
    return out
