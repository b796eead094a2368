"""weightonly: int8 or int4 weight-only quantization of a causal LM's linear layers, for CPU.

Why this shape:

- Generation at batch 1 is bound by reading weights, not by arithmetic: storing them in 8 or 4
  bits and multiplying against fp32 activations is what llama.cpp and gpt-fast do on CPU.
  Activations stay fp32, so the quality cost is the weights' rounding only.
- The kernels are PyTorch's own CPU ops, ``torch._weight_int8pack_mm`` (int8 per output
  channel) and ``torch._weight_int4pack_mm_for_cpu`` (int4 in groups of ``GROUP`` input columns,
  an fp32 scale and zero per group), the ones torchao's CPU int4 layout and gpt-fast call.
  torchao itself was tried (0.18.0 with torch 2.13): its Int8WeightOnlyConfig runs on CPU, but
  every Int4WeightOnlyConfig packing fails there (opaque: unsupported; plain: needs the mslk
  package; tile_packed_to_4d: CUDA only; plain_int32: "does not support device 'cpu'"), its
  CPU int4 path (IntxWeightOnlyConfig) keeps int4 values unpacked in int8, and once installed
  transformers imports it on every model load (import time and log noise for all users).
- On disk: plain safetensors, no pickles or packed kernel blobs. int8: ``<name>.weight`` int8
  ``(N, K)`` + ``<name>.weight_scale`` fp32 ``(N,)``. int4: ``<name>.weight`` uint8
  ``(N, K/2)`` (two 4-bit values per byte, low nibble first) + ``weight_scale`` and
  ``weight_zero`` fp32 ``(N, K/GROUP)`` with ``w = (q - 8) * scale + zero``. Kernel layouts are
  rebuilt at load, so the file does not depend on the CPU it was written on.
- Embeddings are stored int8 per row and expanded to fp32 on load (a lookup costs nothing);
  a tied output head is quantized as its own Linear.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from .int8 import check_layers, quantize_rows
from .stored import SCALE, WEIGHTS_FILE, damaged_artifact, load_rest, skeleton, split_quantized

ZERO = "_zero"
GROUP = 32  # int4 group size along the input dimension (torch's int4 kernel takes 32..256)


def int4_groups(weight: torch.Tensor, group: int = GROUP) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Asymmetric int4 per group: (values 0..15 as uint8 (N, K), scale (N, K/g), zero (N, K/g))
    with ``weight ≈ (values - 8) * scale + zero`` (torch's int4 kernel convention)."""
    n, k = weight.shape
    w = weight.detach().float().reshape(n, k // group, group)
    low, high = w.amin(-1), w.amax(-1)
    scale = ((high - low) / 15).clamp(min=1e-8)
    values = torch.round((w - low[..., None]) / scale[..., None]).clamp(0, 15).to(torch.uint8).reshape(n, k)
    return values, scale, low + 8 * scale


def pack_nibbles(values: torch.Tensor) -> torch.Tensor:
    """(N, K) uint8 in 0..15 -> (N, K/2) uint8, even column in the low nibble."""
    return values[:, 0::2] | (values[:, 1::2] << 4)


def unpack_nibbles(packed: torch.Tensor) -> torch.Tensor:
    out = torch.empty(packed.shape[0], packed.shape[1] * 2, dtype=torch.uint8)
    out[:, 0::2], out[:, 1::2] = packed & 0xF, packed >> 4
    return out


def int4_fits(linear: nn.Linear) -> bool:
    """torch's CPU int4 kernel needs whole groups along K and an even number of outputs."""
    return linear.in_features % GROUP == 0 and linear.out_features % 8 == 0


class WeightOnlyLinear(nn.Module):
    """``y = x @ dequant(W).T + b`` through PyTorch's weight-only CPU kernels; fp32 in and out."""

    def __init__(self, in_features: int, out_features: int, bits: int, bias: torch.Tensor | None):
        super().__init__()
        self.in_features, self.out_features, self.bits = in_features, out_features, bits
        self.bias = None if bias is None else nn.Parameter(bias.detach().float(), requires_grad=False)

    @classmethod
    def int8(cls, values: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor | None) -> WeightOnlyLinear:
        layer = cls(values.shape[1], values.shape[0], 8, bias)
        layer.register_buffer("qweight", values.contiguous())
        layer.register_buffer("scales", scale.float().contiguous())
        return layer

    @classmethod
    def int4(cls, values: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor,
             bias: torch.Tensor | None) -> WeightOnlyLinear:
        layer = cls(values.shape[1], values.shape[0], 4, bias)
        layer.register_buffer("qweight", torch._convert_weight_to_int4pack_for_cpu(values.to(torch.int32), 1))
        layer.register_buffer("scales", torch.stack([scale.float(), zero.float()], -1).transpose(0, 1).contiguous())
        return layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        x2 = x.reshape(-1, shape[-1]).float().contiguous()
        if self.bits == 8:
            y = torch._weight_int8pack_mm(x2, self.qweight, self.scales)
        else:
            y = torch._weight_int4pack_mm_for_cpu(x2, self.qweight, GROUP, self.scales)
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(*shape[:-1], self.out_features).to(x.dtype)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bits={self.bits}"


def quantized_tensors(model: nn.Module, bits: int,
                      progress: bool = False) -> tuple[dict[str, torch.Tensor], list[str]]:
    """The state to save, and the Linears kept at int8 because int4 does not fit their shape."""
    from tqdm.auto import tqdm

    tensors = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    fallback = []
    modules = [(n, m) for n, m in model.named_modules() if isinstance(m, (nn.Linear, nn.Embedding))]
    for name, module in tqdm(modules, desc=f"int{bits}", unit="layer", leave=False, disable=not progress):
        if isinstance(module, nn.Linear):
            if bits == 4 and int4_fits(module):
                values, scale, zero = int4_groups(module.weight)
                tensors[f"{name}.weight"] = pack_nibbles(values).contiguous()
                tensors[f"{name}.weight{SCALE}"], tensors[f"{name}.weight{ZERO}"] = scale, zero
                continue
            if bits == 4:
                fallback.append(name)
            values, scale = quantize_rows(module.weight)
            tensors[f"{name}.weight"], tensors[f"{name}.weight{SCALE}"] = values, scale
        elif isinstance(module, nn.Embedding):
            values, scale = quantize_rows(module.weight)
            tensors[f"{name}.weight"], tensors[f"{name}.weight{SCALE}"] = values, scale
    return tensors, fallback


def build(source: Any, tmp_dir: Path, *, quantize: str | None = None, progress: bool = False) -> dict[str, Any]:
    """Write the weight-only quantized model folder (weights + config) for a loaded fp32 artifact."""
    from safetensors.torch import save_file

    bits = 4 if quantize == "int4" else 8
    check_layers(source.model)
    tensors, fallback = quantized_tensors(source.model, bits, progress)
    save_file(tensors, str(tmp_dir / WEIGHTS_FILE), metadata={"format": "pt", "lmkernel": "weightonly"})
    source.model.config.save_pretrained(str(tmp_dir))
    linear = (f"int4 weight-only, groups of {GROUP} input columns, asymmetric" if bits == 4
              else "int8 weight-only, per output channel, symmetric")
    return {"weights": "weightonly", "quantization": {
        "bits": bits, "linear": linear, "activations": "fp32", "embedding": "int8 per row on disk, fp32 in memory",
        "kernels": "torch._weight_int4pack_mm_for_cpu" if bits == 4 else "torch._weight_int8pack_mm",
        "int8_fallback": fallback}}


def load_model(model_dir: Path, card: dict[str, Any], task: Any) -> nn.Module:
    """Rebuild the model: fp32 skeleton from config.json, WeightOnlyLinear layers swapped in."""
    with damaged_artifact(model_dir, "weight-only"):
        model, tensors = skeleton(model_dir, task)
        fp32, linears = split_quantized(model, tensors, extra=(ZERO,))
        load_rest(model, fp32, linears)
        for name, (values, scale, zero) in linears.items():
            parent, _, child = name.rpartition(".")
            old = model.get_submodule(name)
            bias = fp32.get(f"{name}.bias")
            new = (WeightOnlyLinear.int8(values, scale, bias) if zero is None
                   else WeightOnlyLinear.int4(unpack_nibbles(values), scale, zero, bias))
            if (new.in_features, new.out_features) != (old.in_features, old.out_features):
                raise ValueError(f"{name}: stored {new.out_features}x{new.in_features}, "
                                 f"config {old.out_features}x{old.in_features}")
            setattr(model.get_submodule(parent) if parent else model, child, new)
    return model
