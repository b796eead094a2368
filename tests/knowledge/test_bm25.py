"""BM25: the formula by hand, Chinese through jieba, and add/delete equal to a rebuild."""

from __future__ import annotations

import math

import numpy as np

from lmkernel.knowledge.bm25 import BM25, tokenize


def test_scores_match_a_hand_computation():
    bm = BM25()
    bm.add(["apple banana", "apple apple cherry", "banana"])
    idf = math.log(1 + (3 - 2 + 0.5) / (2 + 0.5))  # "apple": 2 of 3 chunks
    avg = 2.0  # lengths 2, 3, 1
    want1 = idf * 1 * 2.5 / (1 + 1.5 * (0.25 + 0.75 * 2 / avg))
    want2 = idf * 2 * 2.5 / (2 + 1.5 * (0.25 + 0.75 * 3 / avg))
    assert np.allclose(bm.scores("apple"), [want1, want2, 0.0], rtol=1e-5)
    assert np.allclose(bm.scores("Apples!"), bm.scores("apple"))  # case and plural fold
    assert not bm.scores("durian").any()


def test_tokenize_english_and_chinese():
    assert tokenize("The Cats, and studies of 2024!") == ["cat", "study", "2024"]
    assert tokenize("北京是中国的首都") == ["北京", "是", "中国", "的", "首都"]
    assert tokenize("用Python写代码") == ["用", "python", "写", "代码"]


def test_add_and_keep_equal_a_rebuild():
    texts = ["red fox jumps", "lazy dog sleeps", "红色的狐狸", "quick brown fox", "狐狸和狗"]
    inc = BM25()
    inc.add(texts[:2])
    inc.add(texts[2:])
    inc.keep(np.array([True, False, True, True, False]))
    fresh = BM25()
    fresh.add([texts[0], texts[2], texts[3]])
    for q in ("fox", "狐狸", "dog"):
        assert np.allclose(inc.scores(q), fresh.scores(q), rtol=1e-6)
