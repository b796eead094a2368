"""FewRowLinear: the faster few-row GEMM orientation gives nn.Linear's results and generations."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lmkernel.models.layout import FEW_ROWS, FewRowLinear, use_few_row_linears


@pytest.mark.parametrize("rows", [1, 3, 8, FEW_ROWS, FEW_ROWS + 1, 300])
@pytest.mark.parametrize("bias", [True, False])
def test_few_row_linear_matches_linear(rows, bias):
    torch.manual_seed(0)
    plain = nn.Linear(48, 40, bias=bias)
    fast = nn.Linear(48, 40, bias=bias)
    fast.load_state_dict(plain.state_dict())
    fast.__class__ = FewRowLinear
    x = torch.randn(2, rows, 48)  # 3-D, as in a transformer
    with torch.inference_mode():
        want, got = plain(x), fast(x)
    assert got.shape == want.shape and got.is_contiguous()
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_training_keeps_the_plain_path_and_gradients():
    layer = nn.Linear(8, 4)
    layer.__class__ = FewRowLinear
    x = torch.randn(3, 8, requires_grad=True)
    layer(x).sum().backward()
    assert x.grad is not None and layer.weight.grad is not None


def test_causal_lm_artifacts_switch_and_generate_the_same_tokens(tiny_llama):
    """Loading a causal LM switches its plain Linears only; greedy generation is unchanged."""
    from transformers import AutoModelForCausalLM

    from lmkernel.artifact import load_generator

    reference = AutoModelForCausalLM.from_pretrained(tiny_llama).eval()
    model = load_generator(str(tiny_llama))
    kinds = {type(m) for m in model.model.modules() if isinstance(m, nn.Linear)}
    assert kinds == {FewRowLinear}
    assert use_few_row_linears(nn.Sequential(nn.Linear(2, 2).to("meta"))) == 0  # not on the CPU: left alone
    model.tokenizer.padding_side = "left"
    ids = model.tokenizer(["the film was great", "a b c"], return_tensors="pt", padding=True)
    with torch.no_grad():
        want = reference.generate(**ids, max_new_tokens=8, do_sample=False,
                                  pad_token_id=model.tokenizer.pad_token_id)
        got = model.model.generate(**ids, max_new_tokens=8, do_sample=False,
                                   pad_token_id=model.tokenizer.pad_token_id)
    assert got.tolist() == want.tolist()
