"""Plain-Python helpers of the NER task: raw text to words, sliding windows, tags to entity spans.

Kept apart from ``ner.py`` because none of it needs torch or a tokenizer, and each piece is the
kind of thing that is easy to get subtly wrong (offsets, window ownership), so it is tested alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Han ideographs (and extensions), kana and CJK compatibility ideographs: one character is one
# word, as Chinese has no spaces and BERT-style tokenizers split these characters anyway.
CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002fa1f"
_W = rf"(?:(?![{CJK}])\w)"  # a word character that is not CJK
WORD_RE = re.compile(
    rf"(?:[^\W\d_]\.){{2,}}"  # abbreviations: U.S., e.g.
    rf"|\d+(?:[.,:/-]\d+)+"  # numbers, dates, times: 1,000  3.5  1996-08-22
    rf"|[{CJK}]"  # one CJK character
    rf"|{_W}+(?:['’-]{_W}+)*"  # words, with inner hyphens and apostrophes
    rf"|\S"  # any other punctuation or symbol, alone
)


_CJK_CHAR = re.compile(f"[{CJK}]")


def spaced_words(words: list[str]) -> list[str]:
    """The words as running text has them for tokenizers that mark a word's start with its leading space
    (byte-level BPE, SentencePiece): a space before every word but the first, none next to a CJK
    character (Chinese and Japanese text has no spaces)."""
    out = []
    for i, word in enumerate(words):
        glued = i == 0 or bool(_CJK_CHAR.match(word[:1])) or bool(_CJK_CHAR.match(words[i - 1][-1:]))
        out.append(word if glued else " " + word)
    return out


def split_words(text: str) -> list[tuple[str, int, int]]:
    """(word, start, end) for each word of raw text; ``text[start:end] == word``."""
    return [(m.group(), m.start(), m.end()) for m in WORD_RE.finditer(text)]


@dataclass(frozen=True)
class Window:
    start: int  # first word in the window
    end: int  # one past the last word
    own_start: int  # words this window predicts: the ones where it has the most context
    own_end: int


def plan_windows(pieces: list[int], width: int, tags: list[str] | None = None) -> list[Window]:
    """Cover a sentence whose words have ``pieces`` sub-tokens each with windows of at most
    ``width`` sub-tokens, consecutive windows overlapping by about half a window.

    Every word is *owned* by exactly one window: the boundary between two windows' shares lies
    in the middle of their overlap, so each word is predicted with at least a quarter window of
    context on both sides (unless the sentence ends first). With gold ``tags`` the boundary is
    moved off a gold entity (to a word that is not ``I-``), so scoring the shares as separate
    sequences counts exactly the entities of the whole sentence.
    """
    n = len(pieces)
    starts = [0]
    for p in pieces:
        starts.append(starts[-1] + min(p, width))
    if starts[-1] <= width:
        return [Window(0, n, 0, n)]
    spans: list[tuple[int, int]] = []
    a = 0
    while True:
        b = a + 1
        while b < n and starts[b + 1] - starts[a] <= width:
            b += 1
        spans.append((a, b))
        if b >= n:
            break
        target = starts[a] + max(width // 2, 1)
        nxt = next((i for i in range(a + 1, b + 1) if starts[i] >= target), b)
        a = max(nxt, a + 1)
    bounds = [0]
    for (_, prev_end), (a, _) in zip(spans, spans[1:]):
        middle = (starts[a] + starts[prev_end]) / 2
        m = next((i for i in range(a, prev_end) if starts[i] >= middle), prev_end)
        if tags is not None:
            m = _off_entity(m, a, prev_end, tags)
        bounds.append(max(m, bounds[-1]))
    bounds.append(n)
    return [Window(a, b, bounds[k], bounds[k + 1]) for k, (a, b) in enumerate(spans)]


def _off_entity(m: int, lo: int, hi: int, tags: list[str]) -> int:
    """The nearest boundary in [lo, hi] where no gold entity continues (tags[m] is not I-)."""
    for d in range(0, hi - lo + 1):
        for c in (m + d, m - d):
            if lo <= c <= hi and (c >= len(tags) or not tags[c].startswith("I-")):
                return c
    return m


def entity_spans(tags: list[str]) -> list[tuple[str, int, int]]:
    """(type, first word, one past the last word) of each entity in a BIO tag list.

    Lenient like conlleval and seqeval's default mode: an ``I-X`` that does not continue an
    ``X`` entity starts one, so a model's slightly invalid output still yields spans.
    """
    spans: list[tuple[str, int, int]] = []
    kind, begin = None, 0
    for i, tag in enumerate([*tags, "O"]):
        starts = tag.startswith("B-") or (tag.startswith("I-") and tag[2:] != kind)
        if kind is not None and (tag == "O" or starts):
            spans.append((kind, begin, i))
            kind = None
        if starts:
            kind, begin = tag[2:], i
    return spans
