"""EDA's four operations (Wei & Zou 2019) on a text's words, and new labelled rows made with them.

Each operation changes about ``alpha`` x (number of words) words: synonym replacement and random insertion
draw from the embedding-neighbour synonyms (``synonyms.py``), random swap exchanges two words, random
deletion drops each word with probability ``alpha``. Chinese text is cut into words by jieba first, so a
swap moves 电影 rather than half of it. Every draw comes from a generator seeded by (seed, row), so the same
seed gives the same rows.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import replace
from typing import Any

from .words import is_content, join_words, split_words

Synonyms = dict[str, list[str]]  # lower-cased word -> neighbours, best first


def synonym_replacement(words: list[str], n: int, syn: Synonyms, rng: random.Random) -> list[str]:
    """Replace up to ``n`` distinct content words (every occurrence) by one of their synonyms."""
    candidates = sorted({w for w in words if is_content(w) and w.lower() in syn})
    rng.shuffle(candidates)
    chosen = {w: rng.choice(syn[w.lower()]) for w in candidates[:n]}
    return [chosen.get(w, w) for w in words]


def random_insertion(words: list[str], n: int, syn: Synonyms, rng: random.Random) -> list[str]:
    """Insert, ``n`` times, a synonym of a random content word at a random position."""
    out = list(words)
    sources = [w for w in words if is_content(w) and w.lower() in syn]
    if not sources:
        return out
    for _ in range(n):
        word = rng.choice(syn[rng.choice(sources).lower()])
        out.insert(rng.randint(0, len(out)), word)
    return out


def _movable(words: list[str]) -> list[int]:
    """Positions of words (letters or digits): punctuation stays where it is."""
    return [i for i, w in enumerate(words) if any(c.isalnum() for c in w)]


def random_swap(words: list[str], n: int, rng: random.Random) -> list[str]:
    """Swap two random words (never punctuation), ``n`` times."""
    out = list(words)
    places = _movable(out)
    if len(places) < 2:
        return out
    for _ in range(n):
        i, j = rng.sample(places, 2)
        out[i], out[j] = out[j], out[i]
    return out


def random_deletion(words: list[str], p: float, rng: random.Random) -> list[str]:
    """Drop each word (never punctuation) with probability ``p``; one word always stays."""
    places = set(_movable(words))
    if len(places) <= 1:
        return list(words)
    dropped = {i for i in sorted(places) if rng.random() <= p}
    if dropped == places:
        dropped.discard(rng.choice(sorted(places)))
    return [w for i, w in enumerate(words) if i not in dropped]


def apply_op(op: str, words: list[str], alpha: float, syn: Synonyms, rng: random.Random) -> list[str]:
    """One EDA operation on ``words`` at strength ``alpha``."""
    n = max(1, int(alpha * len(words)))
    if op == "synonym":
        return synonym_replacement(words, n, syn, rng)
    if op == "insert":
        return random_insertion(words, n, syn, rng)
    if op == "swap":
        return random_swap(words, n, rng)
    if op == "delete":
        return random_deletion(words, alpha, rng)
    raise ValueError(f"unknown augmentation op {op!r}")


def augment_examples(examples: list[Any], ops: list[str], alpha: float, n_aug: int, syn: Synonyms,
                     seed: int) -> tuple[list[Any], Counter]:
    """Up to ``n_aug`` new rows per example (the operations taken in turn), each keeping its example's label;
    a text equal to its original or to an earlier new one is dropped. Returns (new rows, rows added per op)."""
    added: list[Any] = []
    counts: Counter = Counter({op: 0 for op in ops})
    for i, ex in enumerate(examples):
        rng = random.Random(f"augment:{seed}:{i}")
        words = split_words(ex.text)
        seen = {ex.text}
        for j in range(n_aug):
            op = ops[j % len(ops)]
            text = join_words(apply_op(op, words, alpha, syn, rng))
            if text and text not in seen:
                seen.add(text)
                added.append(replace(ex, text=text, fields={**ex.fields, "augmented": op}))
                counts[op] += 1
    return added, counts


def vocabulary(examples: list[Any]) -> list[str]:
    """The distinct content words of the examples (the words synonyms are looked up for)."""
    return sorted({w for ex in examples for w in split_words(ex.text) if is_content(w)})
