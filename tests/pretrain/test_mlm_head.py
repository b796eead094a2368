"""The masked-LM loss computed only at masked positions equals the full forward's, gradients included."""

from __future__ import annotations

import torch
from transformers import BertConfig, BertForMaskedLM

from lmkernel.pretrain.mlm_head import masked_only_forward, mlm_head


def _model() -> BertForMaskedLM:
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=97, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    return BertForMaskedLM(cfg)


def _batch(masked: float = 0.2) -> dict:
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(5, 97, (4, 16), generator=g)
    labels = torch.full_like(ids, -100)
    chosen = torch.rand(ids.shape, generator=g) < masked
    labels[chosen] = ids[chosen]
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}


def _grads(model) -> dict[str, torch.Tensor]:
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_same_loss_and_gradients_as_the_full_head():
    model, batch = _model(), _batch()
    full = model(**batch)
    full.loss.backward()
    want = _grads(model)
    model.zero_grad()
    out = masked_only_forward(model, batch)
    out.loss.backward()
    got = _grads(model)
    assert torch.allclose(out.loss, full.loss, atol=1e-6)
    assert out.logits.shape == (int((batch["labels"] != -100).sum()), 97)  # only the masked rows
    assert want.keys() == got.keys()
    for name in want:
        assert torch.allclose(want[name], got[name], atol=1e-6), name


def test_no_masked_token_gives_a_zero_loss_that_backpropagates():
    model, batch = _model(), _batch(masked=0.0)
    out = masked_only_forward(model, batch)
    out.loss.backward()
    assert float(out.loss) == 0.0


def test_wrapped_or_unknown_models_fall_back_to_their_own_forward():
    model = _model()
    assert mlm_head(model) is model.cls
    assert mlm_head(model.bert) is None  # not a masked-LM model
    assert mlm_head(torch.nn.Linear(2, 2)) is None


def test_the_model_forward_runs_so_its_autocast_applies():
    """Accelerate makes the prepared model's forward autocast; the masked-only loss must go through it."""
    model, batch = _model(), _batch()
    seen = []
    model.cls.predictions.decoder.register_forward_hook(lambda m, a, out: seen.append(out.dtype))
    forward = model.forward

    def autocast_forward(*args, **kwargs):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return forward(*args, **kwargs)

    model.forward = autocast_forward
    out = masked_only_forward(model, batch)
    out.loss.backward()
    assert seen == [torch.bfloat16] and out.loss.dtype == torch.float32
