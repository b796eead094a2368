"""Inference with each linear layer's weight packed once into oneDNN's blocked layout.

``F.linear`` on CPU hands a plain row-major weight to the BLAS, which re-lays it out (packs it) on
every call. A server calls the same layers with the same weights thousands of times, so packing
once pays: the MiniLM classifier's server batches run faster with its linear layers packed for
oneDNN (bench/experiments/unpadded.py; see BENCHMARKS.md). Fusing GELU into the GEMM as a oneDNN
post-op was slower here in a one-off trial, so only the plain product is packed.

Inference only: a packed layer has no gradient and its weight leaves ``parameters()`` and the
state dict, so pack a model loaded for serving, never one that will be trained or saved.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn

log = logging.getLogger("lmkernel.models")


class PackedLinear(nn.Module):
    """``nn.Linear`` for inference, its weight held in oneDNN's layout (not a parameter or buffer:
    a oneDNN tensor cannot be saved, copied to a device or compared).

    ``dtype`` bf16 packs a bf16 copy of the weight: bf16 serving then runs every linear layer as one bf16
    GEMM on the packed weight, where autocast would cast the fp32 weight to bf16 again on every call."""

    def __init__(self, linear: nn.Linear, dtype: torch.dtype = torch.float32):
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.dtype = dtype
        self.packed = torch.ops.mkldnn._reorder_linear_weight(linear.weight.detach().to(dtype), None)
        self.bias = None if linear.bias is None else linear.bias.detach().to(dtype).clone()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype != self.dtype:  # fp32 from a norm inside a bf16 model, bf16 from autocast in an fp32 one
            out = torch.ops.mkldnn._linear_pointwise(x.to(self.dtype), self.packed, self.bias, "none", [], "")
            return out if self.dtype == torch.bfloat16 else out.to(x.dtype)  # bf16 serving stays bf16
        return torch.ops.mkldnn._linear_pointwise(x, self.packed, self.bias, "none", [], "")

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"
                + (f", dtype={self.dtype}" if self.dtype != torch.float32 else ""))


def can_pack(model: Any) -> str | None:
    """Why ``model``'s linear layers cannot be packed, or None when they can."""
    if not (torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled):
        return "this torch build has no oneDNN (mkldnn)"
    first = next(model.parameters(), None)
    if first is None or first.device.type != "cpu":
        return "the model is not on the CPU"
    if model.training:
        return "the model is in training mode"
    return None


def _agrees(linear: nn.Linear, packed: PackedLinear) -> bool:
    """The packed layer gives the plain layer's outputs on a random input (a broken oneDNN build or
    an unsupported CPU must not serve wrong answers); bf16 within bf16 rounding."""
    x = torch.randn(5, linear.in_features, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        bias = None if linear.bias is None else linear.bias.float()
        want, got = nn.functional.linear(x, linear.weight.float(), bias), packed(x).float()
    tol = 1e-4 if packed.dtype == torch.float32 else 3e-2
    return bool(torch.allclose(got, want, rtol=tol, atol=tol * float(want.abs().max()) + 1e-6))


def pack_linears(model: nn.Module, dtype: torch.dtype = torch.float32) -> int:
    """Replace every fp32 ``nn.Linear`` in ``model`` (in place) by a ``PackedLinear`` computing in
    ``dtype`` (fp32, or bf16 for bf16 serving); return how many.

    Subclasses (quantized or LoRA layers) and non-fp32 layers are left alone. Nothing is replaced
    when ``can_pack`` objects or when any packed layer disagrees with its plain one.
    """
    reason = can_pack(model)
    if reason is not None:
        log.info("linear layers not packed: %s", reason)
        return 0
    swaps = []
    for prefix, parent in model.named_modules():
        for name, child in parent.named_children():
            if type(child) is nn.Linear and child.weight.dtype in (torch.float32, dtype):
                where = f"{prefix}.{name}" if prefix else name
                try:
                    packed = PackedLinear(child, dtype)
                    ok = _agrees(child, packed)
                except RuntimeError as e:  # an op this build lacks
                    log.warning("linear layers not packed: oneDNN failed on %s (%s)", where, e)
                    return 0
                if not ok:
                    log.warning("linear layers not packed: oneDNN's output for %s differs from F.linear's", where)
                    return 0
                swaps.append((parent, name, packed))
    for parent, name, packed in swaps:
        setattr(parent, name, packed)
    return len(swaps)
