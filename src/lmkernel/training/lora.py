"""peft's LoRA Linear as one autograd node (``_LoraLinear``), with an ``addmm`` form as fallback.

peft computes ``result + lora_B(lora_A(dropout(x))) * scaling``: five autograd nodes per adapted
linear (seven per layer), two extra passes over the layer's whole output in the forward and one in
the backward. In the plain case of a frozen ``nn.Linear`` base with no dropout on the adapter
input (the default: ``lora.dropout`` is 0), ``_LoraLinear`` runs the layer as one node with its
backward written out: the scaling multiplies the rank-r intermediate, and the rank-r products are
accumulated into the base output and the input gradient in place. The session-8 form, kept as the
fallback for dropout, a base that is not a plain Linear, or autocast, adds the adapter with
``addmm_`` into the base output through autograd, which makes the backward copy the whole output
gradient (``CopySlices``; gone with the one-node form: ``bench/experiments/train_step.py --profile``).
Same values and gradients as peft up to float rounding (``tests/unit/test_addmm_lora.py``). On fp32
whole-step timings of the forms (``bench/experiments/lora_step.py``) stayed within this CPU's noise: the
gain is real work removed.

Only the plain case is swapped: one active adapter, no variant (DoRA...), no LoRA bias, float32
weights alike, adapters not merged or disabled. Anything else runs peft's own forward. Under bf16
autocast the one-node form runs in bf16 on a bf16 copy of the frozen weight made once (autocast would
re-cast the fp32 weight on every forward); the adapter's gradients flow back to its fp32 weights.
"""

from __future__ import annotations

import functools
from typing import Any

import torch
from torch import nn

from ..models.layout import retype_modules


def _plain(layer: Any) -> str | None:
    """The adapter name when ``layer`` is in the plain case, else None."""
    if layer.disable_adapters or layer.merged or len(layer.active_adapters) != 1:
        return None
    name = layer.active_adapters[0]
    if name not in layer.lora_A or name in getattr(layer, "lora_variant", {}):
        return None
    b = layer.lora_B[name]
    if getattr(b, "bias", None) is not None or b.weight.dtype != layer.lora_A[name].weight.dtype:
        return None
    return name


def _frozen_plain(base: Any, dropout: Any) -> bool:
    """A frozen plain ``nn.Linear`` base (bias frozen too) and no dropout on the adapter's input."""
    if type(base) is not nn.Linear or base.weight.requires_grad or (base.bias is not None and base.bias.requires_grad):
        return False
    no_dropout = isinstance(dropout, nn.Dropout) and (dropout.p == 0 or not dropout.training)
    return isinstance(dropout, nn.Identity) or no_dropout


def _one_node_applies(base: Any, dropout: Any, x: torch.Tensor) -> bool:
    """``_LoraLinear`` in the input's own dtype: no autocast (that case casts first, see ``_autocast_dtype``)."""
    autocast = torch.is_autocast_enabled(x.device.type)
    return _frozen_plain(base, dropout) and not autocast and base.weight.dtype == x.dtype


def _autocast_dtype(x: torch.Tensor) -> torch.dtype | None:
    device = x.device.type
    return torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else None


def _low_precision(base: nn.Linear, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor | None]:
    """A copy of the frozen base weight (and bias) in the autocast dtype, made once: autocast would cast
    the fp32 weight again on every forward. Remade if the weight changes (e.g. an adapter is merged)."""
    w = base.weight
    cached = base.__dict__.get("_lmk_low")  # a plain attribute: not a parameter, not in the state dict
    if cached is None or cached[0] != (dtype, w._version, w.data_ptr()):
        bias = None if base.bias is None else base.bias.detach().to(dtype)
        cached = ((dtype, w._version, w.data_ptr()), w.detach().to(dtype), bias)
        base.__dict__["_lmk_low"] = cached
    return cached[1], cached[2]


class _LoraLinear(torch.autograd.Function):
    """``x Wᵀ + bias + s (x Aᵀ) Bᵀ`` with W frozen, as one autograd node.

    Through autograd, peft's layer (and the addmm form above) is five nodes, and an in-place add into
    the base output makes the backward copy the whole output gradient (``CopySlices``). Here the
    backward is written out: ``dx = g W + (s g B) A``, ``dA = (s g B)ᵀ x``, ``dB = gᵀ (s x Aᵀ)``, the
    rank-r products accumulated in place, with only ``x`` and the (rows, r) intermediate saved."""

    @staticmethod
    def forward(ctx, x, weight, bias, a, b, scaling: float):
        rows = x.reshape(-1, x.shape[-1])
        low = torch.mm(rows, a.t()).mul_(scaling)  # (rows, r)
        out = torch.mm(rows, weight.t()) if bias is None else torch.addmm(bias, rows, weight.t())
        out.addmm_(low, b.t())
        ctx.save_for_backward(rows, weight, a, b, low)
        ctx.scaling, ctx.shape = scaling, x.shape
        return out.view(*x.shape[:-1], out.shape[-1])

    @staticmethod
    def backward(ctx, grad):
        rows, weight, a, b, low = ctx.saved_tensors
        g = grad.reshape(-1, grad.shape[-1])
        g_low = torch.mm(g, b).mul_(ctx.scaling)  # (rows, r): the gradient of s x Aᵀ
        grad_x = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.mm(g, weight).addmm_(g_low, a).view(ctx.shape)
        grad_a = torch.mm(g_low.t(), rows) if ctx.needs_input_grad[3] else None
        grad_b = torch.mm(g.t(), low) if ctx.needs_input_grad[4] else None
        return grad_x, None, None, grad_a, grad_b, None


@functools.cache
def _fused_class() -> type:
    """The subclass of peft's LoRA ``Linear``, made once (peft loads only when LoRA is used)."""
    from peft.tuners.lora.layer import Linear as LoraLinear

    class AddmmLinear(LoraLinear):
        def forward(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
            name = None if args or kwargs else _plain(self)
            if name is None:
                return super().forward(x, *args, **kwargs)
            base, a, b = self.base_layer, self.lora_A[name].weight, self.lora_B[name].weight
            cast = _autocast_dtype(x)
            if cast is not None and _frozen_plain(base, self.lora_dropout[name]):  # bf16 training: one node too
                w, bias = _low_precision(base, cast)
                return _LoraLinear.apply(x.to(cast), w, bias, a.to(cast), b.to(cast), self.scaling[name])
            if x.dtype != a.dtype:
                return super().forward(x, *args, **kwargs)
            if _one_node_applies(base, self.lora_dropout[name], x):
                return _LoraLinear.apply(x, base.weight, base.bias, a, b, self.scaling[name])
            result = base(x)
            low = self.lora_A[name](self.lora_dropout[name](x)) * self.scaling[name]  # (..., r)
            # under autocast the base output and ``low`` come out bf16 while B stays fp32: one dtype for the GEMM
            low, b = low.reshape(-1, low.shape[-1]).to(result.dtype), b.t().to(result.dtype)
            if result.is_contiguous():  # accumulate into the base output itself: no copy of it
                result.view(-1, result.shape[-1]).addmm_(low, b)  # (a linear's backward never reads its output)
                return result
            return torch.addmm(result.reshape(-1, result.shape[-1]), low, b).view(result.shape)

    AddmmLinear.__module__, AddmmLinear.__qualname__ = __name__, "AddmmLinear"
    globals()["AddmmLinear"] = AddmmLinear  # importable by name, so a pickled model still loads
    return AddmmLinear


def use_addmm_lora(model: nn.Module) -> int:
    """Switch peft's LoRA ``Linear`` layers to the addmm forward in place; returns how many."""
    try:
        fused = _fused_class()
    except ImportError:
        return 0
    return retype_modules(model, fused.__mro__[1], fused)
