"""Explanations beyond encoder classifiers: NER entities, generation per output token, a causal-LM
classifier (decoder pooling), and the report snippet."""

from __future__ import annotations

import math

import pytest
from explain_helpers import bag_model

from lmkernel.errors import LmkError
from lmkernel.trust.explain import _log_odds, explain, explain_texts
from lmkernel.trust.explain_render import markdown

NER_LABELS = ["O", "B-PLACE", "I-PLACE", "B-WORK", "I-WORK"]


@pytest.fixture(scope="module")
def ner_model(bert_tokenizer):
    """A token classifier tagging "hotel" as PLACE and "film" as WORK; "the" before them helps a little."""
    weights = {"hotel": {"B-PLACE": 6.0}, "film": {"B-WORK": 6.0}, "the": {"B-PLACE": 1.0, "B-WORK": 1.0}}
    return bag_model(bert_tokenizer, weights, NER_LABELS, per_token=True, bias={"O": 4.0})


def test_ner_explains_each_entity_by_its_own_words(ner_model, bert_tokenizer):
    row = explain_texts(ner_model, bert_tokenizer, "ner", ["the hotel was good , the film was bad"])[0]
    assert [(e["type"], e["text"]) for e in row["entities"]] == [("PLACE", "hotel"), ("WORK", "film")]
    for ent in row["entities"]:
        top = max(ent["words"], key=lambda w: w["score"])
        assert top["word"] == ent["text"]
        assert ent["comprehensiveness"] > ent["comprehensiveness_random"]
    only = explain_texts(ner_model, bert_tokenizer, "ner", ["the hotel was good , the film was bad"], labels="WORK")
    assert [e["type"] for e in only[0]["entities"]] == ["WORK"]


def test_generation_scores_prompt_words_per_output_token(tiny_llama):
    from lmkernel.artifact import load_generator

    handle = load_generator(tiny_llama)
    prompt = "the cat sat on the mat"
    row = explain(handle, prompt, max_new_tokens=3)[0]
    generated = handle.generate(prompt, max_new_tokens=3)[0]
    assert row["task"] == "generation" and row["label"] == generated["text"]
    assert [w["word"] for w in row["words"]] == prompt.split()
    assert len(row["tokens"]) == len(generated["token_ids"])
    for tok in row["tokens"]:
        assert len(tok["words"]) == len(row["words"]) and 0 < tok["probability"] <= 1
    assert all(math.isfinite(row[k]) for k in ("comprehensiveness", "sufficiency", "comprehensiveness_random"))
    forced = explain(handle, prompt, label=" dog")[0]
    assert forced["label"].strip() == "dog"
    with pytest.raises(LmkError) as e:
        explain(handle, prompt, method="ig")
    assert e.value.where == "--method ig" and "occlusion" in e.value.fix


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_causal_lm_classifier_pools_the_last_token(tiny_llama, precision):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from lmkernel.trust.explain_words import encode_words

    tok = AutoTokenizer.from_pretrained(tiny_llama)
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_llama, num_labels=2,
                                                               pad_token_id=tok.pad_token_id).eval()
    text = "hello how are you"
    row = explain_texts(model, tok, "classification", [text], label_names=["a", "b"], n_steps=256,
                        precision=precision)[0]
    assert [w["word"] for w in row["words"]] == text.split() and row["comprehensiveness"] is not None
    if precision == "fp32":  # completeness; the baseline runs as IG sees it: pooled at the text's last position
        enc = encode_words(tok, text, 64)
        index = ["a", "b"].index(row["label"])
        with torch.no_grad():
            base = model.get_input_embeddings()(torch.tensor([enc.without(set(enc.present), tok.pad_token_id)]))
            odds = [_log_odds(model(input_ids=torch.tensor([enc.ids])).logits, [index]),
                    _log_odds(model(inputs_embeds=base).logits, [index])]
        assert sum(w["score"] for w in row["words"]) == pytest.approx(float(odds[0] - odds[1]), abs=0.03)


def test_markdown_snippet_for_the_report(trigger_model, bert_tokenizer):
    rows = explain_texts(trigger_model, bert_tokenizer, "classification", ["the film superb was bad"])
    md = markdown(rows, top=2)
    assert md.startswith("- 'the film superb was bad' → **positive") and "`superb` +" in md
    assert "comprehensiveness" in md


def test_occlusion_is_the_fallback_without_gradients(trigger_model, bert_tokenizer):
    """A model without a differentiable embedding layer (an exported one) is explained by occlusion."""
    class Exported:
        config = trigger_model.config

        def __call__(self, **kwargs):
            return trigger_model(**kwargs)

    rows = explain_texts(Exported(), bert_tokenizer, "classification", ["the film superb was a bad room"])
    assert rows[0]["method"] == "occlusion" and max(rows[0]["words"], key=lambda w: w["score"])["word"] == "superb"
    with pytest.raises(LmkError) as e:
        explain_texts(Exported(), bert_tokenizer, "classification", ["good"], method="ig")
    assert e.value.where == "--method ig"


def test_slow_tokenizer_is_refused_with_a_fix():
    from types import SimpleNamespace

    from lmkernel.trust.explain_words import encode_words

    with pytest.raises(LmkError) as e:
        encode_words(SimpleNamespace(is_fast=False), "good film", 32)
    assert "fast tokenizer" in e.value.what and "tokenizer.json" in e.value.fix
