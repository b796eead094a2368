"""peft's LoRA Linear with the adapter's output added inside one GEMM (``addmm``).

peft computes ``result + lora_B(lora_A(x)) * scaling``: two extra passes over the layer's whole
output (a multiply and an add) in the forward and one in the backward, for each of the seven
adapted linears per layer. A LoRA step of SmolLM2-135M on CPU (Multi30k, batch 8) spent ~20 % of
its time in ``mul``/``add`` (torch.profiler), much of it these passes. Here the scaling multiplies
the rank-r intermediate (r columns instead of the layer's width) and ``addmm`` accumulates
``B`` into the base output in the same GEMM, in place (an out-of-place ``addmm`` first copies the
whole base output). Same values and gradients up to float rounding. Measured since with one model
whose forward is switched between rounds (``bench/lora_step.py``), neither form is faster than
peft's forward beyond this CPU's noise (BENCHMARKS.md); the profile's share did not turn into time.

Only the plain case is swapped: one active adapter, no variant (DoRA...), no LoRA bias, float32
weights alike, adapters not merged or disabled. Anything else runs peft's own forward.
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


@functools.cache
def _fused_class() -> type:
    """The subclass of peft's LoRA ``Linear``, made once (peft loads only when LoRA is used)."""
    from peft.tuners.lora.layer import Linear as LoraLinear

    class AddmmLinear(LoraLinear):
        def forward(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
            name = None if args or kwargs else _plain(self)
            if name is None or x.dtype != self.lora_A[name].weight.dtype:
                return super().forward(x, *args, **kwargs)
            result = self.base_layer(x)
            low = self.lora_A[name](self.lora_dropout[name](x)) * self.scaling[name]  # (..., r)
            low, b = low.reshape(-1, low.shape[-1]), self.lora_B[name].weight.t()
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
