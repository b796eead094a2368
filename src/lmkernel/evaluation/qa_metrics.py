"""Extractive-QA exact match and F1, scored the way each benchmark's official script scores them.

English follows SQuAD's ``evaluate-v2.0.py`` (lower-case, drop punctuation and the articles a/an/the,
collapse spaces; F1 over the bag of words; an unanswerable question scores 1 only for an empty
prediction). Chinese follows CMRC 2018's ``cmrc2018_evaluate.py``: Chinese characters and the listed
punctuation are one segment each, runs of other characters are split into words by NLTK's word
tokenizer (the script calls ``nltk.word_tokenize``, whose sentence splitter needs downloaded data and
changes nothing inside an answer span); F1 from the longest common run of segments with the
punctuation removed, EM on the string with the punctuation removed. Both take the best score over
the gold answers, and both report percentages.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence

from .textmetrics import mostly_unspaced

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCT = set(string.punctuation)
# cmrc2018_evaluate.py's sp_char, in its order ("……" is a two-character entry there and never matches
# one character; its "…" alone is not listed)
CMRC_PUNCT = frozenset(["-", ":", "_", "*", "^", "/", "\\", "~", "`", "+", "=", "，", "。", "：", "？", "！", "“", "”",
                        "；", "’", "《", "》", "·", "、", "「", "」", "（", "）", "－", "～", "『", "』"])
_CMRC_HAN = re.compile(r"[\u4e00-\u9fa5]")  # the script's range


# ------------------------------------------------------------------------------------------- English
def normalize_en(text: str) -> str:
    """SQuAD's normalize_answer."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCT)
    return " ".join(_ARTICLES.sub(" ", text).split())


def em_en(prediction: str, gold: str) -> float:
    return float(normalize_en(prediction) == normalize_en(gold))


def f1_en(prediction: str, gold: str) -> float:
    pred, ref = normalize_en(prediction).split(), normalize_en(gold).split()
    if not pred or not ref:  # SQuAD 2.0: no-answer matches only no-answer
        return float(pred == ref)
    same = sum((Counter(pred) & Counter(ref)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(ref)
    return 2 * precision * recall / (precision + recall)


# ------------------------------------------------------------------------------------------- Chinese
def _words(text: str) -> list[str]:
    from nltk.tokenize import NLTKWordTokenizer

    return NLTKWordTokenizer().tokenize(text)


def segments_zh(text: str, remove_punctuation: bool = True) -> list[str]:
    """cmrc2018_evaluate.py's mixed_segmentation."""
    out: list[str] = []
    run = ""
    for ch in str(text).lower().strip():
        if remove_punctuation and ch in CMRC_PUNCT:
            continue
        if _CMRC_HAN.match(ch) or ch in CMRC_PUNCT:
            if run:
                out.extend(_words(run))
                run = ""
            out.append(ch)
        else:
            run += ch
    if run:
        out.extend(_words(run))
    return out


def normalize_zh(text: str) -> str:
    """cmrc2018_evaluate.py's remove_punctuation: lower-cased, stripped, the listed punctuation dropped."""
    return "".join(ch for ch in str(text).lower().strip() if ch not in CMRC_PUNCT)


def _longest_common_run(a: Sequence[str], b: Sequence[str]) -> int:
    best = 0
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0] * (len(b) + 1)
        for j, y in enumerate(b):
            if x == y:
                cur[j + 1] = prev[j] + 1
                best = max(best, cur[j + 1])
        prev = cur
    return best


def em_zh(prediction: str, gold: str) -> float:
    return float(normalize_zh(prediction) == normalize_zh(gold))


def f1_zh(prediction: str, gold: str) -> float:
    pred, ref = segments_zh(prediction), segments_zh(gold)
    if not ref:  # an unanswerable question (CMRC has none): empty matches only empty
        return float(not pred)
    common = _longest_common_run(ref, pred)
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


# ------------------------------------------------------------------------------------------- both
SCORERS = {"en": (em_en, f1_en), "zh": (em_zh, f1_zh)}


def metric_language(contexts: Sequence[str], option: str = "auto") -> str:
    """``en`` or ``zh``: the option when set, else ``zh`` when the contexts are mostly Chinese-like script."""
    if option != "auto":
        return option
    sample = list(contexts[:200])
    return "zh" if mostly_unspaced(sample) else "en"


def qa_scores(predictions: Sequence[str], golds: Sequence[Sequence[str]], language: str) -> dict[str, float]:
    """EM and F1 in percent, each the best over a question's gold answers (an empty list: unanswerable,
    scored against ""), averaged over questions; with unanswerable questions also ``has_answer_f1`` and
    ``no_answer_f1`` (SQuAD 2.0's HasAns / NoAns split)."""
    em_of, f1_of = SCORERS[language]
    ems, f1s, kinds = [], [], []
    for pred, gold in zip(predictions, golds):
        refs = [g for g in gold if (normalize_en(g) if language == "en" else normalize_zh(g))] or [""]
        ems.append(max(em_of(pred, g) for g in refs))
        f1s.append(max(f1_of(pred, g) for g in refs))
        kinds.append(refs != [""])
    n = max(len(ems), 1)
    out = {"exact_match": 100 * sum(ems) / n, "f1": 100 * sum(f1s) / n}
    if not all(kinds):
        for name, want in (("has_answer_f1", True), ("no_answer_f1", False)):
            part = [f for f, k in zip(f1s, kinds) if k == want]
            out[name] = 100 * sum(part) / len(part) if part else 0.0
    return out


__all__ = ["CMRC_PUNCT", "em_en", "em_zh", "f1_en", "f1_zh", "metric_language", "normalize_en",
           "normalize_zh", "qa_scores", "segments_zh"]
