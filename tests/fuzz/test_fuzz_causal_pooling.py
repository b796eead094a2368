"""Fuzz: classification and NER on a causal-LM backbone (a tiny Llama whose tokenizer has no pad token).

Invariant: any text, the end-of-text token written out in it, empty or whitespace only, gets the same
probabilities alone as batched with the other texts (the head reads each text's last real token, so
the pads around it never matter), the server's predictor agrees with ``predict``, and NER spans index
the text they came from. Never a traceback.
"""

from __future__ import annotations

import copy

import pytest
import torch
from fuzzkit import FAST, SLOW, Tally
from hypothesis import given
from hypothesis import strategies as st

LABELS = ["negative", "positive"]
TAGS = ["O", "B-PLACE", "I-PLACE"]
PIECES = ["the film", " was great", "房间太差", "<|im_end|>", "<|endoftext|>", " ", "\n", "😀", "é", "a" * 40]
texts = st.lists(st.one_of(st.text(max_size=30), st.lists(st.sampled_from(PIECES), max_size=6).map("".join)),
                 min_size=1, max_size=4)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    from tokenizers import Tokenizer, decoders, pre_tokenizers, trainers
    from tokenizers import models as tok_models
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    from lmkernel.artifact import Model
    from lmkernel.models.resolve import load_tokenizer
    from lmkernel.tasks import get_task

    root = tmp_path_factory.mktemp("fuzz-decoder")
    bpe = Tokenizer(tok_models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>", "<|im_end|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    bpe.train_from_iterator(PIECES * 4, trainer)
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|im_end|>")  # no pad token: eos pads
    tok.save_pretrained(root)
    torch.manual_seed(0)
    LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                 num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=128,
                                 eos_token_id=tok.eos_token_id)).save_pretrained(root)
    out = {}
    for name, labels in (("classification", LABELS), ("ner", TAGS)):
        task = get_task(name)
        tokenizer = load_tokenizer(root)
        task.encode([], tokenizer, labels, 64)  # gives it its pad token, as a run does
        card = {"task": name, "labels": labels, "weights": "full", "max_length": 64}
        out[name] = Model(task.build_model(root, labels).eval(), tokenizer, task, card, root)
    from lmkernel.serve.predictor import ClassifierPredictor

    cls = out["classification"]  # the server's own copy: its linear layers get packed
    out["predictor"] = ClassifierPredictor(Model(copy.deepcopy(cls.model), cls.tokenizer, cls.task, cls.card, root))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model: threads only wait on each other
    yield out
    torch.set_num_threads(threads)


def check(models, batch: list[str], tally: Tally) -> None:
    tally.tried += 1
    try:
        cls = models["classification"]
        together = cls.predict(batch)
        for text, alone, got in zip(batch, cls.predict(batch, batch_size=1), together):
            assert alone["probabilities"] == pytest.approx(got["probabilities"], abs=1e-5), repr(text)
        predictor = models["predictor"]
        served = predictor(predictor.encode(batch, truncate=True))
        for s, got in zip(served, together):
            assert s["probabilities"] == pytest.approx(got["probabilities"], abs=1e-4)
        for text, res in zip(batch, models["ner"].predict(batch)):
            assert all(text[e["start"]:e["end"]] == e["text"] for e in res["entities"])
        tally.accepted += 1
    except Exception as e:  # noqa: BLE001  (every failure is recorded, then the test fails)
        tally.failures.append(f"{batch!r}: {type(e).__name__}: {e}")
        raise


def test_causal_pooling_fast(models):
    tally = Tally("causal-pooling")

    @FAST
    @given(texts)
    def run(batch):
        check(models, batch, tally)

    run()
    assert not tally.failures


@pytest.mark.slow
def test_causal_pooling_slow(models):
    tally = Tally("causal-pooling")

    @SLOW
    @given(texts)
    def run(batch):
        try:
            check(models, batch, tally)
        except Exception:  # noqa: BLE001  (counted; the assertion below reports them)
            pass

    run()
    print(tally.line())
    assert not tally.failures, tally.failures[:5]
