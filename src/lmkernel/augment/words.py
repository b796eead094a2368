"""Words an augmentation may touch: whitespace words for English, jieba words for Chinese runs, rejoined
the way each language writes them (spaces between Latin words, none around Chinese ones)."""

from __future__ import annotations

import re
import unicodedata

_HAN_RUN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]+")

# The stop words EDA leaves alone (its list, after NLTK's), and the commonest Chinese function words
STOP_EN = frozenset("""
i me my myself we our ours ourselves you your yours yourself yourselves he him his himself she her hers herself it
its itself they them their theirs themselves what which who whom this that these those am is are was were be been
being have has had having do does did doing a an the and but if or because as until while of at by for with about
against between into through during before after above below to from up down in out on off over under again further
then once here there when where why how all any both each few more most other some such no nor not only own same so
than too very s t can will just don should now 's n't 're 've 'll 'd
""".split())
STOP_ZH = frozenset("的 了 是 在 和 与 及 或 也 都 就 而 但 又 着 过 得 地 吗 呢 吧 啊 么 之 其 这 那 "
                    "我 你 他 她 它 们 我们 你们 他们 一个 不 没 很 还 被 把 让 给 对 从 向 以 为 于 所 则".split())


def is_han(text: str) -> bool:
    """True when every character is a Chinese (Han) character."""
    return bool(text) and all("\u4e00" <= c <= "\u9fff" or "\u3400" <= c <= "\u4dbf" for c in text)


def is_stop_word(word: str) -> bool:
    return word.lower() in STOP_EN or word in STOP_ZH


def is_content(word: str) -> bool:
    """A word an operation may replace, move or drop the neighbours of: letters, not a stop word."""
    return any(unicodedata.category(c).startswith("L") for c in word) and not is_stop_word(word)


def has_han(text: str) -> bool:
    return _HAN_RUN.search(text) is not None


def split_words(text: str) -> list[str]:
    """The text's words in order: Chinese runs cut by jieba, everything else split at whitespace."""
    from ..evaluation.words import segment

    return segment(text, str.split, _HAN_RUN)


def _cjk_edge(ch: str) -> bool:
    return is_han(ch) or unicodedata.category(ch).startswith("P") and ord(ch) > 0x2fff  # ，。！ are wide


def join_words(words: list[str]) -> str:
    """Words back into text: a space between two words unless either side is Chinese."""
    out = ""
    for w in words:
        if out and not (_cjk_edge(out[-1]) or _cjk_edge(w[0])):
            out += " "
        out += w
    return out
