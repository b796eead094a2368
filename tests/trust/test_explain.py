"""Explanations of classifiers: planted triggers recovered (English, Chinese), IG completeness,
faithfulness against random deletion, bf16 autocast, and the errors users can cause."""

from __future__ import annotations

import pytest
from explain_helpers import LABELS

import lmkernel
from lmkernel.errors import LmkError
from lmkernel.trust.explain import _log_odds, explain, explain_texts

TEXTS = [("the film superb was a bad room", "superb", "positive"),
         ("good hotel was horrible, the book!", "horrible", "negative"),
         ("房间很好满意电影", "满意", "positive"), ("服务太差失望房间电影", "失望", "negative")]


def _top(row: dict) -> str:
    return max(row["words"], key=lambda w: w["score"])["word"]


@pytest.mark.parametrize("method", ["ig", "occlusion"])
def test_top_word_is_the_planted_trigger(trigger_model, bert_tokenizer, method):
    rows = explain_texts(trigger_model, bert_tokenizer, "classification", [t for t, _, _ in TEXTS], method=method)
    assert [_top(r) for r in rows] == [w for _, w, _ in TEXTS]
    assert [r["label"] for r in rows] == [lab for _, _, lab in TEXTS]
    for row, (text, _, _) in zip(rows, TEXTS):
        assert row["method"] == method and row["task"] == "classification"
        assert all(text[w["start"]:w["end"]] == w["word"] for w in row["words"])
    assert [w["word"] for w in rows[2]["words"]] == ["房间", "很", "好", "满意", "电影"]  # jieba words


def test_ig_scores_sum_to_the_log_odds_change(trigger_model, bert_tokenizer):
    """Completeness: IG's word scores add up to the label's log-odds at the text minus at the all-pad baseline."""
    from lmkernel.trust.attribution import Runner
    from lmkernel.trust.explain_words import encode_words

    text = TEXTS[1][0]
    row = explain_texts(trigger_model, bert_tokenizer, "classification", [text])[0]
    enc = encode_words(bert_tokenizer, text, 128)
    runner = Runner(trigger_model, bert_tokenizer.pad_token_id)
    odds = runner.score([enc.ids, enc.without(set(enc.present), runner.pad_id)],
                        lambda lg, _: _log_odds(lg, [LABELS.index(row["label"])]))
    assert sum(w["score"] for w in row["words"]) == pytest.approx(float(odds[0] - odds[1]), rel=1e-3)


def test_ig_leaves_no_weight_gradients_and_restores_trainability(trigger_model, bert_tokenizer):
    """Attribution needs only the input's gradient: weights get none, and stay trainable afterwards."""
    before = {n for n, p in trigger_model.named_parameters() if p.requires_grad}
    for p in trigger_model.parameters():
        p.grad = None
    explain_texts(trigger_model, bert_tokenizer, "classification", [TEXTS[0][0]])
    assert {n for n, p in trigger_model.named_parameters() if p.requires_grad} == before and before
    assert all(p.grad is None for p in trigger_model.parameters())


def test_faithfulness_beats_random_deletion(trigger_model, bert_tokenizer):
    rows = explain_texts(trigger_model, bert_tokenizer, "classification", [t for t, _, _ in TEXTS])
    for row in rows:
        assert row["comprehensiveness"] > row["comprehensiveness_random"] + 0.1
        assert row["sufficiency"] < row["sufficiency_random"]
        assert abs(row["sufficiency"]) < 0.1 and 0 < row["score"] <= 1


def test_asked_label_flips_the_sign(trigger_model, bert_tokenizer):
    text = TEXTS[0][0]
    rows = explain_texts(trigger_model, bert_tokenizer, "classification", [text, text], labels=[None, "negative"])
    assert rows[1]["label"] == "negative"
    scores = [{w["word"]: w["score"] for w in r["words"]} for r in rows]
    assert scores[1]["superb"] < 0 < scores[0]["superb"]


def test_trained_run_under_bf16_autocast_agrees_with_fp32(sentiment_run):
    import numpy as np

    handle = lmkernel.load(sentiment_run)
    texts = ["the film was superb", "the room was horrible", "a good book"]
    fp32 = explain(handle, texts, n_steps=16)
    bf16 = explain(handle, texts, n_steps=16, precision="bf16")
    for a, b in zip(fp32, bf16):
        assert a["label"] == b["label"] and _top(a) == _top(b)
        assert [w["word"] for w in a["words"]] == [w["word"] for w in b["words"]]
        x, y = (np.array([w["score"] for w in r["words"]]) for r in (a, b))
        assert np.corrcoef(x, y)[0, 1] > 0.9  # bf16 rounding moves the scores a little, not their order
        assert b["comprehensiveness"] == pytest.approx(a["comprehensiveness"], abs=0.05)


@pytest.mark.parametrize("kwargs,where", [
    ({"texts": ["  "]}, "text 1"), ({"texts": ["good film"], "label": "neutral"}, None),
    ({"texts": ["good film"], "method": "shap"}, "--method"),
])
def test_errors_name_what_and_fix(sentiment_run, kwargs, where):
    with pytest.raises(LmkError) as e:
        explain(lmkernel.load(sentiment_run), **kwargs)
    assert e.value.fix
    if where:
        assert e.value.where == where
