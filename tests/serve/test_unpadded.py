"""The unpadded classifier forward (one sequence, per-text positions) against the padded one."""

from __future__ import annotations

import asyncio

import pytest
import torch

from lmkernel.models.unpadded import UNPADDED, classify_unpadded, supports_unpadded
from lmkernel.serve.batcher import Batcher
from lmkernel.serve.predictor import ClassifierPredictor

TEXTS = ["great film", "太差了", "the a great film great film the a", "a", "film the great a 太差了 great"]


def padded_logits(model, items):
    width = max(len(x) for x in items)
    ids = torch.tensor([x + [0] * (width - len(x)) for x in items])
    mask = torch.tensor([[1] * len(x) + [0] * (width - len(x)) for x in items])
    return model(input_ids=ids, attention_mask=mask).logits


def test_logits_equal_the_padded_forward_for_texts_of_different_lengths(tiny_model):
    model = tiny_model.model.eval()
    items = tiny_model.tokenizer(TEXTS)["input_ids"]
    assert len({len(x) for x in items}) >= 4  # the case that pads
    assert supports_unpadded(model)
    with torch.inference_mode():
        want = padded_logits(model, items)
        got = classify_unpadded(model, items)
        alone = torch.cat([classify_unpadded(model, [x]) for x in items])
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(alone, want, rtol=1e-5, atol=1e-5)  # neighbours do not leak into a text
    assert model.config._attn_implementation != UNPADDED  # restored after the call


def test_the_attention_setting_is_restored_when_the_forward_fails(tiny_model):
    model = tiny_model.model.eval()
    before = model.config._attn_implementation
    with pytest.raises(IndexError), torch.inference_mode():
        classify_unpadded(model, [[2, 10**6, 3]])  # a token id past the vocabulary
    assert model.config._attn_implementation == before


def test_the_function_given_is_the_one_called_even_after_another_took_the_name(tiny_model):
    from lmkernel.models.attention import attention_function

    model = tiny_model.model.eval()
    called = []

    def spy(name):
        def attend(module, query, key, value, attention_mask, **kwargs):
            called.append(name)
            return query.transpose(1, 2), None
        return attend

    ids = torch.tensor([[2, 5, 3]])
    for name in ("first", "second"):
        with attention_function(model.config, "lmk_test_spy", spy(name)), torch.inference_mode():
            model(input_ids=ids)
    assert called == ["first"] * 2 + ["second"] * 2  # one call per layer of the 2-layer model


def test_the_switch_holds_until_the_last_thread_leaves_and_refuses_a_second_name(tiny_model):
    """Served models run from several worker threads: one leaving must not restore the model's own
    attention under another's packed call (which would then attend across texts)."""
    import threading

    from lmkernel.models.attention import attention_function

    config = tiny_model.model.config
    own = config._attn_implementation
    inside, leave = threading.Event(), threading.Event()

    def other_worker():
        with attention_function(config, "lmk_test_a", lambda *a, **k: None):
            inside.set()
            leave.wait(10)

    t = threading.Thread(target=other_worker)
    t.start()
    assert inside.wait(10)
    with attention_function(config, "lmk_test_a", lambda *a, **k: None):
        assert config._attn_implementation == "lmk_test_a"
    assert config._attn_implementation == "lmk_test_a"  # the other thread is still inside
    with pytest.raises(RuntimeError, match="lmk_test_a"):
        with attention_function(config, "lmk_test_b", lambda *a, **k: None):
            pass
    leave.set()
    t.join(10)
    assert config._attn_implementation == own


def test_concurrent_unpadded_calls_each_get_their_own_logits(tiny_model):
    from concurrent.futures import ThreadPoolExecutor

    model = tiny_model.model.eval()
    items = tiny_model.tokenizer(TEXTS)["input_ids"]
    batches = [items[i:] + items[:i] for i in range(len(items))] * 4
    with torch.inference_mode():
        want = [padded_logits(model, b) for b in batches]

        def run(b):
            with torch.inference_mode():
                return classify_unpadded(model, b)

        with ThreadPoolExecutor(4) as pool:
            got = list(pool.map(run, batches))
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-5)
    assert model.config._attn_implementation != UNPADDED


def test_only_bert_family_classifiers_take_the_unpadded_path(tiny_model, tiny_llama):
    from transformers import AutoModelForSequenceClassification

    assert ClassifierPredictor(tiny_model).unpadded
    llama = AutoModelForSequenceClassification.from_pretrained(tiny_llama, num_labels=2)
    assert not supports_unpadded(llama)
    assert not supports_unpadded(torch.nn.Linear(2, 2))


def test_predictor_answers_match_the_padded_model(tiny_model):
    predictor = ClassifierPredictor(tiny_model)
    items = predictor.encode(TEXTS, truncate=False)
    out = predictor(items)
    with torch.inference_mode():
        probs = torch.softmax(padded_logits(tiny_model.model.eval(), items), -1)
    for o, p in zip(out, probs.tolist()):
        assert o["probabilities"] == pytest.approx(dict(zip(predictor.labels, p)), abs=1e-5)


def test_batcher_runs_a_whole_batch_as_one_group_when_not_grouping_by_length():
    calls = []

    def run(items):
        calls.append(list(items))
        return [len(x) for x in items]

    b = Batcher(run, max_batch=16, max_wait_ms=50, max_queue=100, length=len, group_by_length=False)
    b.start()

    async def main():
        reqs = [["x" * 100], ["x"] * 3, ["xx"]]  # lengths plan_groups would cut apart
        return await asyncio.gather(*(b.submit(r) for r in reqs))

    assert asyncio.run(main()) == [[100], [1, 1, 1], [2]]
    b.close()
    assert len(calls) == 1 and len(calls[0]) == 5


def test_other_heads_on_a_bert_encoder_keep_the_padded_path(tiny_bert):
    from transformers import BertForMultipleChoice, BertForTokenClassification

    assert not supports_unpadded(BertForMultipleChoice.from_pretrained(tiny_bert))  # pools, but per choice
    assert not supports_unpadded(BertForTokenClassification.from_pretrained(tiny_bert, num_labels=3))
