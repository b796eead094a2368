"""Chinese-aware generation metrics: ROUGE per character, BLEU with sacreBLEU's zh tokenizer,
full-width forms folded, traditional characters and mixed scripts scored."""

from __future__ import annotations

import pytest

from lmkernel.evaluation.textmetrics import MixedTokenizer, bleu_chrf, bleu_tokenizer, mostly_unspaced, rouge


def test_rouge_scores_chinese_where_rouge_score_alone_gives_zero():
    from rouge_score import rouge_scorer

    ref, hyp = "今天股市大幅下跌", "今天股市下跌"
    plain = rouge_scorer.RougeScorer(["rouge1"], use_stemmer=True).score(ref, hyp)["rouge1"].fmeasure
    assert plain == 0.0  # rouge-score drops every non-ASCII character
    ours = rouge([hyp], [ref])
    assert ours["rouge1"] == pytest.approx(2 * 6 / (6 + 8))  # 6 shared characters of 6 and 8
    assert 0 < ours["rougeL"] <= ours["rouge1"]


def test_english_rouge_matches_rouge_score():
    from rouge_score import rouge_scorer

    ref, hyp = "The markets fell sharply today", "markets falling today"
    plain = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True).score(ref, hyp)
    ours = rouge([hyp], [ref])
    for k in ours:
        assert ours[k] == pytest.approx(plain[k].fmeasure)


def test_mixed_scripts_traditional_full_width_and_emoji():
    tok = MixedTokenizer()
    assert tok.tokenize("iPhone １５很好用！👍") == ["iphon", "15", "很", "好", "用"]
    assert tok.tokenize("營收成長") == ["營", "收", "成", "長"]  # traditional characters are characters too
    assert rouge(["ＡＢＣ公司"], ["ABC公司"])["rouge1"] == pytest.approx(1.0)  # full-width folded


def test_bleu_tokenizer_from_language_or_script():
    assert bleu_tokenizer("zh", []) == "zh" and bleu_tokenizer("zh-TW", []) == "zh"
    assert bleu_tokenizer("de", ["你好世界"]) == "13a"
    assert bleu_tokenizer(None, ["今天天气很好"]) == "zh" and bleu_tokenizer(None, ["good day"]) == "13a"
    assert bleu_tokenizer("ja", []) == "char"
    assert mostly_unspaced(["A股今天大跌"]) and not mostly_unspaced(["the Shanghai index 上"])


def test_chinese_bleu_is_not_all_or_nothing():
    refs = ["今天股市大幅下跌，投资者担忧"]
    exact = bleu_chrf(refs, refs, "zh")
    near = bleu_chrf(["今天股市下跌，投资者担忧"], refs, "zh")
    assert exact["bleu"] == pytest.approx(100.0)
    assert 20 < near["bleu"] < 100  # with the 13a tokenizer the unspaced sentence is one word: 0
    assert bleu_chrf(["今天股市下跌,投资者担忧"], refs, "zh")["bleu"] == pytest.approx(near["bleu"])  # ， vs ,
