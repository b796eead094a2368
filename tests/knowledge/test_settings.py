"""Choices by language: the default model (and why), and the dense weight in the fusion."""

from __future__ import annotations

from lmkernel.knowledge.settings import ZH_DENSE_WEIGHT, choose_model, fusion_weights, languages


def test_default_model_records_why():
    model, why = choose_model(["退货请在七天内联系客服。", "订单一般三天内发货。"])
    assert model == "minilm" and "Chinese" in why and "BM25" in why
    model, why = choose_model(["Shipping takes three days."])
    assert model == "minilm" and "English" in why


def test_dense_weighs_little_for_chinese_queries_with_an_english_encoder():
    minilm = {"embedder": {"model": "minilm"}, "settings": {}}
    assert fusion_weights("退货多久", minilm) == (1.0, ZH_DENSE_WEIGHT) and ZH_DENSE_WEIGHT < 0.01
    assert fusion_weights("how long are returns", minilm) == (1.0, 1.0)
    assert fusion_weights("退货多久", {"embedder": {"model": "runs/zh-embedder"}, "settings": {}}) == (1.0, 1.0)
    tuned = {"embedder": {"model": "minilm"}, "settings": {"fusion": {"dense_zh": 0.5, "bm25": 2.0}}}
    assert fusion_weights("退货多久", tuned) == (2.0, 0.5)
    assert languages(["中文句子", "english", "mixed 中文和 text 文本"]) == {"en": 1, "zh": 2}
