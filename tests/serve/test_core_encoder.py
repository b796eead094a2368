"""The request path's tokenizing straight from the Rust core (serve/predictor.core_encoder)."""

from __future__ import annotations

import lmkernel
from lmkernel.serve.predictor import ClassifierPredictor, core_encoder

TEXTS = ["great film", "", "  spaces   everywhere  ", "房间太差了，服务也不好", "naïve café 😀 déjà vu",
         "UPPER lower MiXeD 123 4.56", "tab\tand\nnewline", "word " * 90]


def test_core_ids_equal_the_tokenizers_own_with_and_without_truncation(tiny_run):
    model = lmkernel.load(tiny_run)
    predictor = ClassifierPredictor(model)
    assert predictor._ids is not None and predictor._cut_ids is not None  # the fast lane is on
    tok = model.tokenizer
    assert predictor.encode(TEXTS, truncate=True) == tok(TEXTS, truncation=True,
                                                         max_length=predictor.max_input_tokens)["input_ids"]
    short = TEXTS[:-1]  # the last one is over the limit: 413 without truncate
    assert predictor.encode(short, truncate=False) == tok(short)["input_ids"]
    assert max(map(len, predictor.encode(TEXTS, truncate=True))) == predictor.max_input_tokens


def test_no_fast_lane_for_a_slow_tokenizer_or_a_core_that_disagrees(tiny_run):
    tok = lmkernel.load(tiny_run).tokenizer

    class Slow:  # no Rust core
        def __call__(self, texts, **_):
            return {"input_ids": [[1] for _ in texts]}

    class Disagrees(Slow):  # a wrapper that adds something the core does not
        _tokenizer = tok._tokenizer

    assert core_encoder(Slow(), None) is None
    assert core_encoder(Disagrees(), None) is None and core_encoder(Disagrees(), 8) is None
    assert core_encoder(tok, 8) is not None
