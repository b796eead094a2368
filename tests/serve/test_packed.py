"""Linear layers packed for oneDNN (models/packed.py): same answers as the plain model, or no packing."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch
from torch import nn

import lmkernel
from lmkernel.models.packed import PackedLinear, pack_linears
from lmkernel.models.unpadded import classify_unpadded
from lmkernel.serve.predictor import ClassifierPredictor

pytestmark = pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="torch without oneDNN")

TEXTS = ["great film", "太差了", "the a great film great film the a", "a", "film the great a 太差了 great"]


def linears(model: nn.Module) -> list[str]:
    return [name for name, m in model.named_modules() if type(m) is nn.Linear]


def logits(model, items):
    with torch.inference_mode():
        width = max(len(x) for x in items)
        ids = torch.tensor([x + [0] * (width - len(x)) for x in items])
        mask = torch.tensor([[1] * len(x) + [0] * (width - len(x)) for x in items])
        return model(input_ids=ids, attention_mask=mask).logits, classify_unpadded(model, items)


def test_packed_model_gives_the_plain_models_logits_padded_and_unpadded(tiny_run):
    plain, packed = lmkernel.load(tiny_run).model, lmkernel.load(tiny_run)
    items = packed.tokenizer(TEXTS)["input_ids"]
    want = logits(plain, items)
    expected = len(linears(packed.model))
    assert expected >= 6  # q, k, v, out, up, down per layer, pooler, head
    assert pack_linears(packed.model) == expected
    assert linears(packed.model) == [] and sum(isinstance(m, PackedLinear) for m in packed.model.modules()) == expected
    for got, ref in zip(logits(packed.model, items), want):
        torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)
    # the dense weights are gone: what is left as parameters is embeddings, norms and nothing per linear layer
    assert not any(name.endswith(("query.weight", "dense.weight", "classifier.weight"))
                   for name, _ in packed.model.named_parameters())


def test_several_threads_share_one_packed_model(tiny_run):
    model = lmkernel.load(tiny_run)
    batches = [model.tokenizer(TEXTS[i:] + TEXTS[:i])["input_ids"] for i in range(5)]
    want = [logits(model.model, b)[1] for b in batches]
    pack_linears(model.model)

    def run(batch):  # the server's path only: a padded forward beside it would see the switched attention
        torch.set_num_threads(1)
        with torch.inference_mode():
            return classify_unpadded(model.model, batch)

    with ThreadPoolExecutor(4) as pool:
        for _ in range(3):
            for got, ref in zip(pool.map(run, batches), want):
                torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)


def test_bf16_input_runs_in_fp32_and_comes_back_in_bf16():
    torch.manual_seed(0)
    linear = nn.Linear(16, 8).eval()
    packed = PackedLinear(linear)
    x = torch.randn(3, 4, 16)
    with torch.inference_mode():
        got = packed(x.bfloat16())
        want = linear(x.bfloat16().float())
    assert got.dtype == torch.bfloat16 and got.shape == (3, 4, 8)
    torch.testing.assert_close(got.float(), want, rtol=1e-2, atol=1e-2)


def test_nothing_is_packed_in_training_mode_or_for_subclasses():
    class Lora(nn.Linear):  # stands for peft's and quantized layers: not ours to replace
        pass

    model = nn.Sequential(nn.Linear(4, 4), Lora(4, 4))
    assert pack_linears(model) == 0 and type(model[0]) is nn.Linear  # training mode: untouched
    model.eval()
    assert pack_linears(model) == 1
    assert isinstance(model[0], PackedLinear) and type(model[1]) is Lora


def test_a_packed_layer_that_disagrees_leaves_the_whole_model_plain(monkeypatch, caplog):
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2)).eval()
    monkeypatch.setattr(PackedLinear, "forward", lambda self, x: torch.zeros(x.shape[0], self.out_features))
    with caplog.at_level(logging.WARNING, logger="lmkernel.models"):
        assert pack_linears(model) == 0
    assert [type(m) for m in model] == [nn.Linear, nn.ReLU, nn.Linear]
    assert "differs from F.linear" in caplog.text
    assert "linear layers not packed: oneDNN's output for 0 differs" in caplog.text  # the module's path


def test_a_oneDNN_op_that_fails_leaves_the_whole_model_plain(monkeypatch, caplog):
    model = nn.Sequential(nn.Sequential(nn.ReLU(), nn.Linear(4, 4)), nn.ReLU()).eval()

    def missing(self, x):
        raise RuntimeError("could not create a primitive descriptor")

    monkeypatch.setattr(PackedLinear, "forward", missing)
    with caplog.at_level(logging.WARNING, logger="lmkernel.models"):
        assert pack_linears(model) == 0
    assert type(model[0][1]) is nn.Linear
    assert "oneDNN failed on 0.1 (could not create a primitive descriptor)" in caplog.text


def test_the_predictor_packs_in_its_precision_and_on_request(tiny_run):
    assert ClassifierPredictor(lmkernel.load(tiny_run)).packed > 0
    assert ClassifierPredictor(lmkernel.load(tiny_run), prepack=False).packed == 0
    bf16 = ClassifierPredictor(lmkernel.load(tiny_run), precision="bf16")  # bf16 weights packed once
    layers = [m for m in bf16.model.modules() if isinstance(m, PackedLinear)]
    assert bf16.packed == len(layers) > 0 and {m.dtype for m in layers} == {torch.bfloat16}


def test_a_bf16_packed_layer_computes_in_bf16_close_to_fp32():
    torch.manual_seed(0)
    linear = nn.Linear(64, 32).eval()
    packed = PackedLinear(linear, torch.bfloat16)
    x = torch.randn(5, 64)
    with torch.inference_mode():
        got, want = packed(x), linear(x)  # an fp32 input (from a norm) is cast to bf16
    assert got.dtype == torch.bfloat16
    torch.testing.assert_close(got.float(), want, rtol=3e-2, atol=3e-2)
