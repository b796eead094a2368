"""BLEU, chrF and ROUGE that score Chinese (and other unspaced scripts) as well as English.

sacreBLEU's default tokenizer treats an unspaced Chinese sentence as one word, and rouge-score's
drops every non-ASCII character, so a Chinese summary scores 0 against any reference. Chinese is
scored per character here (the usual practice for Chinese ROUGE; BLEU uses sacreBLEU's ``zh``
tokenizer), full-width forms are folded to half-width first (NFKC), and the choice is made from
the language code or, without one, from the references' script.
"""

from __future__ import annotations

import re
import unicodedata

HAN = r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"  # Han: unified, extension A, compatibility ideographs
# Han, kana, Thai and Lao: scripts written without spaces between words
_UNSPACED = HAN + r"\u3040-\u30ff\u0e00-\u0eff"
_TOKEN = re.compile(rf"[{_UNSPACED}]|[^\W_{_UNSPACED}]+", re.UNICODE)
_HAN_OR_KANA = re.compile(rf"[{_UNSPACED}]")
_CHAR_LANGS = {"ja", "th", "lo", "my", "km"}


def normalize(text: str) -> str:
    """Full-width letters, digits and punctuation as their half-width forms (ＡＢＣ１２３，→ ABC123,)."""
    return unicodedata.normalize("NFKC", text)


def mostly_unspaced(texts: list[str]) -> bool:
    """True when at least a third of the letters are Chinese/Japanese/Thai-like (no spaces between words)."""
    letters = sum(ch.isalpha() for t in texts for ch in t)
    unspaced = sum(len(_HAN_OR_KANA.findall(t)) for t in texts)
    return letters > 0 and unspaced * 3 >= letters


def bleu_tokenizer(lang: str | None, references: list[str]) -> str:
    """The sacreBLEU tokenizer for a target language code, or guessed from the references."""
    code = (lang or "").lower().replace("_", "-").split("-")[0]
    if code == "zh":
        return "zh"
    if code in _CHAR_LANGS:
        return "char"
    if not code or code not in {"en", "de", "fr", "es", "it", "pt", "nl", "ru", "cs", "ko"}:
        return "zh" if mostly_unspaced(references) else "13a"
    return "13a"


def bleu_chrf(hypotheses: list[str], references: list[str], lang: str | None = None) -> dict[str, float]:
    import sacrebleu

    hyps = [normalize(h) for h in hypotheses]
    refs = [normalize(r) for r in references]
    tokenize = bleu_tokenizer(lang, refs)
    bleu = sacrebleu.corpus_bleu(hyps, [refs], tokenize=tokenize)
    chrf = sacrebleu.corpus_chrf(hyps, [refs])
    return {"bleu": float(bleu.score), "chrf": float(chrf.score)}


class MixedTokenizer:
    """rouge-score's tokenizer interface: unspaced-script characters one by one, other words whole
    (lower-cased, Porter-stemmed like rouge-score's own)."""

    def __init__(self, use_stemmer: bool = True) -> None:
        from nltk.stem import porter

        self._stemmer = porter.PorterStemmer() if use_stemmer else None

    def tokenize(self, text: str) -> list[str]:
        tokens = _TOKEN.findall(normalize(text).lower())
        if self._stemmer is None:
            return tokens
        return [self._stemmer.stem(t) if len(t) > 3 and t.isascii() else t for t in tokens]


def rouge(hypotheses: list[str], references: list[str]) -> dict[str, float]:
    """Mean ROUGE-1/2/L F1 over the pairs, characters as tokens for Chinese."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], tokenizer=MixedTokenizer())
    totals = {"rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0}
    for h, r in zip(hypotheses, references):
        for k, v in scorer.score(r, h).items():
            totals[k] += v.fmeasure
    return {k: v / max(len(hypotheses), 1) for k, v in totals.items()}
