"""Label-preserving perturbations of text, for measuring robustness (not for training).

Kinds: ``typo`` (character swap, drop, insertion, keyboard-neighbour replacement in English words),
``synonym`` (hand-written English and Chinese synonym groups, ``evaluation/synonyms.py``),
``zh_traditional`` (simplified to traditional characters, zhconv), ``zh_fullwidth`` (ASCII to
full-width forms, as typed by a Chinese IME) and ``zh_confusable`` (homophone and look-alike
characters). Negation words (not, n't, 不, 没 ...) are never edited, inserted or created, so the
label a person would give stays the same. Every choice comes from a generator seeded by (seed, kind,
row), so a perturbed set is the same on every machine and does not depend on the other rows.
"""

from __future__ import annotations

import random
import re

from ..errors import LmkError
from .synonyms import EN_SYNONYMS, KEYBOARD, NEGATIONS_EN, NEGATIONS_ZH, ZH_CONFUSABLE, ZH_SYNONYMS

KINDS = ("typo", "synonym", "zh_traditional", "zh_fullwidth", "zh_confusable")
DEFAULT_RATE = 0.25  # share of the eligible words (or characters) a perturbation edits, at least one

_WORD = re.compile(r"[A-Za-z]+(?:'[A-Za-z]+)?")
_CJK = re.compile(r"[\u4e00-\u9fff]")
_ZH_KEYS = sorted(ZH_SYNONYMS, key=len, reverse=True)  # longest match first: 非常 before 常


def _protected(word: str) -> bool:
    return word.lower() in NEGATIONS_EN or word.lower().endswith("n't")


def _typo(word: str, rng: random.Random) -> str:
    """One character-level edit of ``word``: swap two neighbours, drop, insert, or hit a neighbouring key."""
    i = rng.randrange(1, len(word) - 1) if len(word) > 2 else 0  # keep the first letter, as people read by it
    op = rng.choice(("swap", "drop", "insert", "key"))
    ch = word[i].lower()
    if op == "swap" and i + 1 < len(word):
        return word[:i] + word[i + 1] + word[i] + word[i + 2:]
    if op == "drop" and len(word) > 3:
        return word[:i] + word[i + 1:]
    near = KEYBOARD.get(ch) or "e"
    if op == "insert":
        return word[:i] + rng.choice(near) + word[i:]
    return word[:i] + rng.choice(near) + word[i + 1:]


def _edit_words(text: str, rng: random.Random, rate: float, edit) -> str:
    """Apply ``edit(word, rng) -> str | None`` to a sample of the English words (None: not editable)."""
    spans = [m for m in _WORD.finditer(text) if not _protected(m.group())]
    candidates = [m for m in spans if edit(m.group(), random.Random(0)) is not None]
    if not candidates:
        return text
    chosen = rng.sample(candidates, max(1, round(rate * len(candidates))))
    out, last = [], 0
    for m in sorted(chosen, key=lambda m: m.start()):
        new = edit(m.group(), rng)
        if new is None or _protected(new):
            new = m.group()
        out += [text[last:m.start()], new]
        last = m.end()
    return "".join(out) + text[last:]


def _typo_edit(word: str, rng: random.Random) -> str | None:
    return _typo(word, rng) if len(word) >= 3 and word.isalpha() else None


def _synonym_edit(word: str, rng: random.Random) -> str | None:
    options = EN_SYNONYMS.get(word.lower())
    if not options:
        return None
    new = rng.choice(options)
    return new.capitalize() if word[:1].isupper() else new


def _zh_spans(text: str, table: dict) -> list[tuple[int, int]]:
    """Non-overlapping (start, end) of table keys in ``text``, longest first, none right after a negation."""
    spans, taken = [], [False] * len(text)
    keys = sorted(table, key=len, reverse=True)
    for key in keys:
        for m in re.finditer(re.escape(key), text):
            s, e = m.span()
            if any(taken[s:e]) or (s > 0 and text[s - 1] in NEGATIONS_ZH) or any(c in NEGATIONS_ZH for c in key):
                continue
            taken[s:e] = [True] * (e - s)
            spans.append((s, e))
    return sorted(spans)


def _replace_zh(text: str, rng: random.Random, rate: float, table: dict, pick) -> str:
    spans = _zh_spans(text, table)
    if not spans:
        return text
    chosen = sorted(rng.sample(spans, max(1, round(rate * len(spans)))))
    out, last = [], 0
    for s, e in chosen:
        out += [text[last:s], pick(table[text[s:e]], rng)]
        last = e
    return "".join(out) + text[last:]


def _synonyms(text: str, rng: random.Random, rate: float) -> str:
    text = _edit_words(text, rng, rate, _synonym_edit)
    return _replace_zh(text, rng, rate, ZH_SYNONYMS, lambda options, r: r.choice(options))


def _fullwidth(text: str) -> str:
    """ASCII letters, digits and punctuation to their full-width forms (U+FF01..U+FF5E); spaces to U+3000."""
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else "\u3000" if c == " " else c for c in text)


def perturb_text(text: str, kind: str, rng: random.Random, rate: float = DEFAULT_RATE) -> str:
    """``text`` perturbed by ``kind``; unchanged where the kind finds nothing to edit (zh_* on English)."""
    if kind == "typo":
        return _edit_words(text, rng, rate, _typo_edit)
    if kind == "synonym":
        return _synonyms(text, rng, rate)
    if kind == "zh_traditional":
        if not _CJK.search(text):
            return text
        import zhconv

        return zhconv.convert(text, "zh-hant")
    if kind == "zh_fullwidth":
        return _fullwidth(text) if _CJK.search(text) else text  # an English text in full width is another test
    if kind == "zh_confusable":
        return _replace_zh(text, rng, rate, ZH_CONFUSABLE, lambda new, r: new)
    raise check_kinds([kind]) or AssertionError(kind)


def check_kinds(kinds: list[str]) -> LmkError | None:
    """The error for an unknown perturbation kind (None: all known)."""
    unknown = [k for k in kinds if k not in KINDS]
    if not unknown:
        return None
    return LmkError(f"unknown perturbation kind {unknown[0]!r}", where="robustness kinds",
                    fix=f"use some of: {', '.join(KINDS)}")


def perturb(texts: list[str], kind: str, seed: int = 0, rate: float = DEFAULT_RATE) -> list[str]:
    """Each text perturbed by ``kind``, deterministically by (seed, kind, row index).

    Raises:
        LmkError: an unknown kind, or a rate outside (0, 1].
    """
    error = check_kinds([kind])
    if error is not None:
        raise error
    if not 0 < rate <= 1:
        raise LmkError(f"perturbation rate {rate} is outside (0, 1]", where="robustness rate",
                       fix="give the share of words to edit, e.g. 0.25")
    return [perturb_text(t, kind, random.Random(f"{seed}:{kind}:{i}"), rate) for i, t in enumerate(texts)]
