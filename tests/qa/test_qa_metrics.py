"""EM/F1 against SQuAD's official normalisation and CMRC 2018's scoring, on hand-computed cases."""

from __future__ import annotations

import pytest

from lmkernel.evaluation import qa_metrics as m


@pytest.mark.parametrize("text,want", [
    ("The Cat!", "cat"), ("  a  Denver   Broncos. ", "denver broncos"), ("the theatre", "theatre"),
    ("Saint-Denis, an area", "saintdenis area"),
])
def test_squad_normalisation(text, want):
    assert m.normalize_en(text) == want


def test_squad_em_and_f1():
    assert m.em_en("Denver Broncos", "the denver broncos!") == 1.0
    # pred {cat, sat}, gold {cat, sat, on, mat}: P 1, R 1/2 -> 2/3
    assert m.f1_en("the cat sat", "a cat sat on the mat") == pytest.approx(2 / 3)
    assert m.f1_en("Broncos", "Carolina Panthers") == 0.0
    assert m.f1_en("", "") == 1.0 and m.f1_en("cat", "") == 0.0  # SQuAD 2.0: no-answer matches only no-answer


def test_cmrc_segments_and_punctuation():
    assert m.segments_zh("《红楼梦》") == ["红", "楼", "梦"]
    assert m.segments_zh("1990年") == ["1990", "年"]
    assert m.segments_zh("Hello World，你好") == ["hello", "world", "你", "好"]
    assert m.em_zh("《红楼梦》", "红楼梦") == 1.0
    assert m.em_zh("1990", "1990年") == 0.0


def test_cmrc_f1_is_the_longest_common_run():
    assert m.f1_zh("北京", "北京大学") == pytest.approx(2 / 3)  # P 2/2, R 2/4
    assert m.f1_zh("1990", "1990年") == pytest.approx(2 / 3)  # segments [1990] vs [1990, 年]
    # 甲乙戊丙丁 vs 甲乙丙丁: a common run of 2 (not 4 common characters): P 2/5, R 2/4 -> 4/9
    assert m.f1_zh("甲乙戊丙丁", "甲乙丙丁") == pytest.approx(4 / 9)
    assert m.f1_zh("东京", "北京大学") == pytest.approx(2 * (1 / 2) * (1 / 4) / (3 / 4))  # 京: P 1/2, R 1/4


def test_best_over_gold_answers_in_percent():
    scores = m.qa_scores(["北京大学", "上海"], [["北京", "北京大学"], ["南京"]], "zh")
    # question 1: EM 1, F1 1; question 2: EM 0, F1 ("京" vs "海"... no common) 0
    assert scores == {"exact_match": 50.0, "f1": 50.0}
    en = m.qa_scores(["the cat sat", ""], [["a cat sat on the mat", "cat sat"], []], "en")
    assert en["exact_match"] == 100.0 and en["f1"] == 100.0 and en["no_answer_f1"] == 100.0


def test_language_from_the_contexts_or_the_option():
    assert m.metric_language(["北京大学是一所大学。"] * 3) == "zh"
    assert m.metric_language(["The Eiffel Tower is in Paris."]) == "en"
    assert m.metric_language(["北京大学"], "en") == "en"
