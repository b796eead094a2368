"""Words for reports: jieba for Chinese, plain word characters elsewhere, and the words that mark a label.

A report that lists, per label, the training words most over-represented in it lets a user see what
the model can lean on, including shortcuts (a product name that only occurs in negative reviews).
Chinese has no spaces, so its runs are cut into words by jieba; full-width forms are folded first.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Iterable

from .textmetrics import HAN, normalize

_CJK_RUN = re.compile(f"[{HAN}]+")
_WORD = re.compile(r"[^\W\d_]{2,}|\d+(?:[.,]\d+)*%?", re.UNICODE)
_jieba = None


def segmenter():
    """jieba, imported once and quiet (its dictionary loads on the first cut)."""
    global _jieba
    if _jieba is None:
        import logging

        import jieba

        jieba.setLogLevel(logging.WARNING)
        _jieba = jieba
    return _jieba


def words(text: str) -> list[str]:
    """The words of ``text`` in order: Chinese runs cut by jieba, other letters as words of two or more,
    numbers whole; lower-cased after NFKC (ＡＢＣ -> abc), punctuation and emoji dropped."""
    return segment(normalize(text).lower(), _WORD.findall)


def segment(text: str, other: Callable[[str], list[str]], runs: re.Pattern = _CJK_RUN) -> list[str]:
    """The words of ``text`` in order: each Chinese run (``runs``) cut by jieba, the text between them by
    ``other``."""
    out: list[str] = []
    pos = 0
    for m in runs.finditer(text):
        out += other(text[pos:m.start()])
        out += [w for w in segmenter().lcut(m.group(), HMM=True) if w.strip()]
        pos = m.end()
    return out + other(text[pos:])


def marking_words(examples: Iterable[tuple[str, str]], labels: list[str], k: int = 8, min_count: int = 3,
                  max_texts: int = 5000, prior: float = 500.0) -> dict[str, list[tuple[str, float]]]:
    """Per label, the ``k`` words most over-represented in its texts against the other labels' texts:
    the log-odds ratio with an informative Dirichlet prior (Monroe, Colaresi & Quinn 2008), as a z-score,
    so rare words do not top the list by chance. Each word counts once per text."""
    per_label: dict[str, Counter] = {lab: Counter() for lab in labels}
    for i, (text, label) in enumerate(examples):
        if i >= max_texts:
            break
        if label in per_label:
            per_label[label].update(set(words(text)))
    total: Counter = Counter()
    for c in per_label.values():
        total.update(c)
    n_all = sum(total.values())
    if not n_all:
        return {lab: [] for lab in labels}
    out: dict[str, list[tuple[str, float]]] = {}
    for lab in labels:
        mine = per_label[lab]
        n_i = sum(mine.values())
        n_j = n_all - n_i
        scored = []
        for w, count in total.items():
            if count < min_count:
                continue
            a_w = prior * count / n_all
            y_i, y_j = mine[w], count - mine[w]
            delta = (math.log((y_i + a_w) / (n_i + prior - y_i - a_w))
                     - math.log((y_j + a_w) / (n_j + prior - y_j - a_w)))
            z = delta / math.sqrt(1 / (y_i + a_w) + 1 / (y_j + a_w))
            if z > 0:
                scored.append((w, z))
        scored.sort(key=lambda wz: (-wz[1], wz[0]))
        out[lab] = [(w, round(z, 1)) for w, z in scored[:k]]
    return out


def marking_words_section(examples: Iterable[tuple[str, str]], labels: list[str], k: int = 8) -> list[str]:
    """The report's markdown for :func:`marking_words` (empty when no word qualifies)."""
    found = marking_words(examples, labels, k=k)
    if not any(found.values()):
        return []
    lines = ["## Words that mark each label (train)", "",
             "Words over-represented in a label's training texts (z-score of the log-odds ratio against the "
             "other labels; Chinese cut into words by jieba). A name or a code high on this list is a shortcut "
             "the model may learn instead of the sentiment or intent.", "",
             "| label | words |", "|---|---|"]
    lines += [f"| {lab} | {', '.join(f'{w} ({z})' for w, z in found[lab]) or '-'} |" for lab in labels]
    return lines + [""]
