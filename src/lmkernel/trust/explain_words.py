"""Words for explanations: character spans of a text's words, and which word each token belongs to.

Attributions are computed per token but read per word, because sub-word pieces ("##ing", "Ġgre") mean
nothing to a user. English (and other spaced scripts) splits at whitespace and punctuation, each
punctuation mark a word of its own; Chinese runs are cut by jieba (the segmenter the reports use,
``evaluation/words.py``). Tokens map to words through the fast tokenizer's offset mapping, so any
tokenizer (WordPiece, byte-level BPE, SentencePiece) gives the same words for the same text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ..errors import LmkError
from ..evaluation.textmetrics import HAN

_CJK_RUN = re.compile(f"[{HAN}]+")
_WORD = re.compile(rf"[^\W{HAN}]+|[^\w\s]", re.UNICODE)  # letters/digits runs, or one punctuation mark


def word_spans(text: str) -> list[tuple[int, int]]:
    """The (start, end) character spans of the words of ``text``, in order."""
    from ..evaluation.words import segmenter

    spans: list[tuple[int, int]] = []
    pos = 0
    for m in _CJK_RUN.finditer(text):
        spans += [(w.start() + pos, w.end() + pos) for w in _WORD.finditer(text[pos:m.start()])]
        spans += [(m.start() + a, m.start() + b) for _, a, b in segmenter().tokenize(m.group(), HMM=True)]
        pos = m.end()
    spans += [(w.start() + pos, w.end() + pos) for w in _WORD.finditer(text[pos:])]
    return spans


@dataclass
class Encoded:
    """One text as the model reads it: token ids, and per token the index of its word (-1: a special or
    template token, never deleted; -2: a generated token that follows the prompt)."""

    text: str
    words: list[tuple[int, int]]
    ids: list[int]
    word_of: list[int]
    shift: int = 0  # where ``text`` starts inside the string that was tokenized (a chat template)
    present: list[int] = field(default_factory=list)  # the words that kept at least one token

    def __post_init__(self) -> None:
        if not self.present:
            self.present = sorted({w for w in self.word_of if w >= 0})

    def without(self, drop: set[int], replace_id: int | None = None) -> list[int]:
        """The ids with the tokens of the ``drop`` words removed, or replaced by ``replace_id`` (positions
        kept: targets read at fixed positions, as NER's, need that)."""
        if replace_id is None:
            return [t for t, w in zip(self.ids, self.word_of) if w not in drop]
        return [replace_id if w in drop else t for t, w in zip(self.ids, self.word_of)]


def _char_words(n: int, spans: list[tuple[int, int]]) -> list[int]:
    owner = [-1] * n
    for i, (a, b) in enumerate(spans):
        for c in range(a, b):
            owner[c] = i
    return owner


def encode_words(tokenizer: Any, text: str, max_length: int, *, full: str | None = None, shift: int = 0,
                 add_special_tokens: bool = True) -> Encoded:
    """Tokenize ``full`` (default: ``text``; a prompt template holding ``text`` at ``shift``) and map each
    token to the word of ``text`` its characters fall in.

    Raises:
        LmkError: the tokenizer gives no offsets (a slow, Python-only tokenizer).
    """
    if not getattr(tokenizer, "is_fast", False):
        raise LmkError("explanations need a fast tokenizer (one with offset mappings) to find each token's word",
                       where=type(tokenizer).__name__,
                       fix="save the model with its tokenizer.json (AutoTokenizer.from_pretrained(..., use_fast=True))")
    full = text if full is None else full
    words = word_spans(text)
    owner = _char_words(len(text), words)
    enc = tokenizer(full, truncation=True, max_length=max_length, return_offsets_mapping=True,
                    add_special_tokens=add_special_tokens, verbose=False)
    word_of = []
    for a, b in enc["offset_mapping"]:
        hit = -1
        for c in range(max(a - shift, 0), min(b - shift, len(text))):
            if owner[c] >= 0:
                hit = owner[c]
                break
        word_of.append(hit)
    return Encoded(text, words, list(enc["input_ids"]), word_of, shift)
