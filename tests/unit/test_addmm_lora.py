"""The addmm LoRA forward gives peft's values and gradients, and steps aside where it does not apply."""

from __future__ import annotations

import copy

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from lmkernel.training.lora import use_addmm_lora
from lmkernel.tuning import apply_tuning


def _pair(layers: int = 2, bias: bool = False, **lora):
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=layers,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                      attention_bias=bias, mlp_bias=bias)
    model = apply_tuning(LlamaForCausalLM(cfg), "lora", **lora)
    for name, p in model.named_parameters():  # peft starts B at zero: give it values so it matters
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.5)
    fused = copy.deepcopy(model)
    return model, fused


def _step(model, ids):
    out = model(input_ids=ids, labels=ids)
    out.loss.backward()
    return out.logits.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}


def _assert_same_as_peft(plain, fused, ids) -> dict:
    """One training step of each: equal logits and LoRA gradients; returns peft's gradients."""
    logits_a, grads_a = _step(plain, ids)
    logits_b, grads_b = _step(fused, ids)
    torch.testing.assert_close(logits_b, logits_a, rtol=1e-5, atol=1e-5)
    assert grads_a.keys() == grads_b.keys()
    for name in grads_a:
        torch.testing.assert_close(grads_b[name], grads_a[name], rtol=1e-4, atol=1e-6)
    return grads_a


def test_same_logits_and_gradients_as_peft():
    plain, fused = _pair(r=4, alpha=8)
    assert use_addmm_lora(fused) == 14  # 7 linears x 2 layers
    assert use_addmm_lora(fused) == 0  # already switched
    assert len(_assert_same_as_peft(plain, fused, torch.randint(0, 64, (3, 9)))) == 28


@pytest.mark.parametrize("case", ["disabled", "merged"])
def test_falls_back_to_peft_outside_the_plain_case(case):
    plain, fused = _pair(r=4, alpha=8)
    use_addmm_lora(fused)
    ids = torch.randint(0, 64, (2, 5))
    if case == "disabled":
        with plain.disable_adapter(), fused.disable_adapter():
            torch.testing.assert_close(fused(input_ids=ids).logits, plain(input_ids=ids).logits)
    else:
        plain.merge_adapter()
        fused.merge_adapter()
        torch.testing.assert_close(fused(input_ids=ids).logits, plain(input_ids=ids).logits)


def test_bf16_layers_agree_to_bf16_precision():
    _, fused = _pair(r=4, alpha=8)
    use_addmm_lora(fused)
    layer = fused.base_model.model.model.layers[0].mlp.up_proj.to(torch.bfloat16)
    x = torch.randn(2, 5, 32, dtype=torch.bfloat16)
    peft_forward = type(layer).__mro__[1].forward  # peft's own Linear.forward
    torch.testing.assert_close(layer(x).float(), peft_forward(layer, x).float(), rtol=2e-2, atol=2e-2)


def test_in_place_accumulation_and_the_non_contiguous_fallback_match_peft():
    """The adapter is added into the base output in place; a base layer whose output is a transposed
    view (the few-row layout of models/layout.py) takes the copying addmm instead."""
    plain, fused = _pair(r=4, alpha=8)
    use_addmm_lora(fused)
    layer = fused.base_model.model.model.layers[0].mlp.up_proj
    base = layer.base_layer
    layer.base_layer = type("Transposed", (torch.nn.Module,), {
        "forward": lambda self, x: (base.weight @ x.reshape(-1, x.shape[-1]).T).T.reshape(*x.shape[:-1], -1)})()
    _assert_same_as_peft(plain, fused, torch.randint(0, 64, (2, 7)))


def test_biased_base_layers_match_peft():
    plain, fused = _pair(layers=1, bias=True, r=4, alpha=8)
    assert use_addmm_lora(fused) == 7
    _assert_same_as_peft(plain, fused, torch.randint(0, 64, (2, 6)))


def test_the_single_node_form_takes_only_the_case_it_covers():
    from lmkernel.training.lora import _one_node_applies

    x = torch.randn(2, 8)
    frozen = torch.nn.Linear(8, 4).requires_grad_(False)
    assert _one_node_applies(frozen, torch.nn.Identity(), x)
    assert _one_node_applies(frozen, torch.nn.Dropout(0.1).eval(), x)  # eval: no mask drawn
    assert not _one_node_applies(frozen, torch.nn.Dropout(0.1).train(), x)  # a mask on the adapter input
    assert not _one_node_applies(torch.nn.Linear(8, 4), torch.nn.Identity(), x)  # the base itself trains
    assert not _one_node_applies(frozen, torch.nn.Identity(), x.double())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not _one_node_applies(frozen, torch.nn.Identity(), x)


def test_bf16_autocast_runs_the_one_node_form_close_to_peft():
    """Under bf16 autocast (every GPU, AVX512-BF16 CPUs) the fused layer runs in bf16 on a cached bf16 copy of
    the frozen weight; logits and LoRA gradients stay within bf16 rounding of peft's own autocast forward."""
    plain, fused = _pair(r=4, alpha=8)
    assert use_addmm_lora(fused) > 0
    ids = torch.randint(0, 64, (2, 12), generator=torch.Generator().manual_seed(1))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits_a, grads_a = _step(plain, ids)
        logits_b, grads_b = _step(fused, ids)
    assert logits_b.dtype == logits_a.dtype
    torch.testing.assert_close(logits_b.float(), logits_a.float(), rtol=5e-2, atol=5e-2)
    for name in grads_a:
        assert grads_b[name].dtype == torch.float32  # the adapter's fp32 weights get fp32 gradients
        torch.testing.assert_close(grads_b[name], grads_a[name], rtol=0.1, atol=0.1 * float(grads_a[name].abs().max()))
    cached = [m for m in fused.modules() if "_lmk_low" in m.__dict__]
    assert cached and all(m.__dict__["_lmk_low"][1].dtype == torch.bfloat16 for m in cached)
    assert not any("_lmk_low" in k for k in fused.state_dict())
