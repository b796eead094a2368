"""int8: dynamic quantization of an encoder artifact with PyTorch's API, stored in safetensors.

Why this shape:

- Every ``nn.Linear`` becomes a dynamically quantized int8 layer
  (``torch.ao.quantization.quantize_dynamic``): weights int8 per output channel, activations
  quantized per batch at run time, GEMMs through fbgemm/x86: the recipe of BASELINES.md section 2,
  faster than fp32 at a small accuracy cost (see BENCHMARKS.md, Compression).
- The word embedding is half of MiniLM's parameters but costs nothing at run time (a lookup), so
  embeddings are stored int8 per row on disk only (weight-only) and expanded to fp32 on load:
  the folder shrinks to about a quarter and inference speed is unchanged.
- On disk the weights are plain int8 tensors plus fp32 per-row scales (``<name>.weight_scale``)
  in ``model.safetensors``: no pickles and no packed fbgemm blobs, so the file is portable and
  loading rebuilds exactly the quantized values that were measured.
"""

from __future__ import annotations

import contextlib
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import LmkError
from .stored import SCALE, WEIGHTS_FILE, damaged_artifact, load_rest, skeleton, split_quantized

FUSE_QKV = True  # one int8 GEMM for query/key/value at load time (fuse_qkv); the file keeps them apart


@contextlib.contextmanager
def _no_ao_deprecation() -> Iterator[None]:
    """torch 2.13 warns on every quantized-tensor creation that ``torch.ao`` quantized tensors
    will be removed (pytorch issue 184982). pyproject pins torch, and the on-disk format (plain
    int8 + scales) does not depend on them, so users are not shown the warning on every load."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*quantized tensor creation functions.*deprecated")
        yield


def check_layers(model: nn.Module) -> None:
    """Reject models whose matrices live in layer types int8 would silently leave in fp32.

    Raises:
        LmkError: a module other than nn.Linear / nn.Embedding holds a weight matrix (e.g.
            GPT-2's ``Conv1D`` or a convolution), which ``quantize_dynamic`` would skip.
    """
    bad: dict[str, str] = {}
    for name, module in model.named_modules():
        weight = getattr(module, "weight", None)
        if isinstance(weight, torch.Tensor) and weight.dim() >= 2 and not isinstance(module, (nn.Linear, nn.Embedding)):
            bad.setdefault(type(module).__name__, name)
    if bad:
        kinds = ", ".join(f"{kind} (e.g. {name})" for kind, name in bad.items())
        raise LmkError(f"int8 quantization does not support the layer type(s) {kinds}",
                       where="--method int8",
                       fix="int8 handles models built from nn.Linear and nn.Embedding (BERT-style encoders); "
                       "try --method onnx --quantize int8")


def quantize_model(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with every nn.Linear dynamically quantized to int8 per output channel.

    ``quantize_dynamic`` matches layer types exactly, so a loaded causal LM's ``FewRowLinear``
    layers (an nn.Linear with another forward) are made plain in the copy first; any linear
    layer still in fp32 afterwards is an error rather than an "int8" artifact that is not.

    Raises:
        LmkError: a linear layer was left unquantized.
    """
    import copy

    import torch.ao.nn.quantized.dynamic as nnqd
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    from ..models.layout import FewRowLinear, retype_modules

    check_layers(model)
    plain = copy.deepcopy(model)
    retype_modules(plain, FewRowLinear, nn.Linear)
    with _no_ao_deprecation():
        qmodel = quantize_dynamic(plain, {nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8, inplace=True)
    left = [name for name, m in qmodel.named_modules() if isinstance(m, nn.Linear) and not isinstance(m, nnqd.Linear)]
    if left:
        raise LmkError(f"int8 quantization left {len(left)} linear layer(s) in fp32, e.g. {left[0]}",
                       where="--method int8",
                       fix="these layers are a subclass of nn.Linear that PyTorch's dynamic quantization "
                       "skips; load the model with plain nn.Linear layers or try --method weightonly")
    return qmodel


def quantize_rows(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric int8 per row: (int8 values, fp32 scales) with weight ≈ values * scales[:, None]."""
    scale = weight.detach().abs().amax(dim=1).clamp(min=1e-12) / 127.0  # (rows,)
    values = torch.round(weight.detach() / scale[:, None]).clamp(-127, 127).to(torch.int8)
    return values, scale.float()


def int8_tensors(model: nn.Module, qmodel: nn.Module) -> dict[str, torch.Tensor]:
    """The state to save: int8 + scales for quantized Linears and embeddings, fp32 for the rest."""
    import torch.ao.nn.quantized.dynamic as nnqd

    tensors = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    for name, module in qmodel.named_modules():
        if isinstance(module, nnqd.Linear):
            q = module.weight()  # per-channel quantized tensor, zero points all 0 (symmetric)
            values, scale = q.int_repr(), q.q_per_channel_scales().float()
        elif isinstance(module, nn.Embedding):
            values, scale = quantize_rows(module.weight)
        else:
            continue
        tensors[f"{name}.weight"] = values.contiguous()
        tensors[f"{name}.weight{SCALE}"] = scale.contiguous()
    return tensors


def build(source: Any, tmp_dir: Path) -> dict[str, Any]:
    """Write the int8 model folder (weights + config) for a loaded fp32 artifact."""
    from safetensors.torch import save_file

    qmodel = quantize_model(source.model)
    tensors = int8_tensors(source.model, qmodel)
    save_file(tensors, str(tmp_dir / WEIGHTS_FILE), metadata={"format": "pt", "lmkernel": "int8"})
    source.model.config.save_pretrained(str(tmp_dir))
    return {"weights": "int8", "quantization": {"linear": "dynamic int8, per output channel, symmetric",
                                                "embedding": "int8 per row on disk, fp32 in memory"}}


def _swap_linear(model: nn.Module, name: str, values: torch.Tensor, scale: torch.Tensor) -> None:
    """Replace the fp32 Linear ``name`` by a dynamic int8 Linear holding exactly ``values``."""
    import torch.ao.nn.quantized.dynamic as nnqd

    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name)
    fp32 = getattr(parent, child)
    q = torch.quantize_per_channel(values.float() * scale[:, None], scale.double(),
                                   torch.zeros(len(scale), dtype=torch.long), 0, torch.qint8)
    layer = nnqd.Linear(fp32.in_features, fp32.out_features, bias_=fp32.bias is not None, dtype=torch.qint8)
    layer.set_weight_bias(q, None if fp32.bias is None else fp32.bias.detach())
    setattr(parent, child, layer)


class _Shared(threading.local):
    """The fused output of the last query call, per thread (the server may run forwards concurrently)."""

    x: torch.Tensor | None = None
    out: tuple[torch.Tensor, ...] = ()


class QKVSlice(nn.Module):
    """Stands in for one of query/key/value: the query call runs one int8 GEMM for all three
    (one activation quantization, one wide matrix instead of three narrow ones) and the key and
    value calls on the same input take their part of it. Any other input (cross-attention) runs
    the slice's own layer, so results never depend on the call order."""

    def __init__(self, layer: nn.Module, index: int, shared: _Shared, sizes: list[int],
                 fused: nn.Module | None = None):
        super().__init__()
        self.layer, self.index, self._shared, self._sizes = layer, index, shared, sizes
        self._fused = [fused]  # a list: the fused layer is registered once, on the query slice
        if fused is not None:
            self.fused = fused

    def weight(self) -> torch.Tensor:
        return self.layer.weight()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shared = self._shared
        if self.index == 0 and self._fused[0] is not None:
            out = self._fused[0](x)
            shared.x, shared.out = x, out.split(self._sizes, dim=-1)
            return shared.out[0]
        if shared.x is x and len(shared.out) > self.index:
            part = shared.out[self.index]
            if self.index == 2:
                shared.x, shared.out = None, ()  # free the activations once value took its part
            return part
        return self.layer(x)


def fuse_qkv(model: nn.Module) -> int:
    """Give every self-attention one int8 GEMM for query, key and value; returns how many.

    The fused matrix is the three per-channel int8 matrices stacked: the same values and scales,
    and the one activation quantization they shared anyway (same input, same dynamic range)."""
    import torch.ao.nn.quantized.dynamic as nnqd

    count = 0
    for module in model.modules():
        layers = [getattr(module, n, None) for n in ("query", "key", "value")]
        if not all(isinstance(x, nnqd.Linear) for x in layers) or len({x.in_features for x in layers}) != 1:
            continue
        weights = [x.weight() for x in layers]
        if any(w.qscheme() != torch.per_channel_affine for w in weights):
            continue
        values = torch.cat([w.int_repr() for w in weights])
        scales = torch.cat([w.q_per_channel_scales() for w in weights])
        biases = [x.bias() for x in layers]
        q = torch.quantize_per_channel(values.float() * scales[:, None].float(), scales.double(),
                                       torch.zeros(len(scales), dtype=torch.long), 0, torch.qint8)
        fused = nnqd.Linear(layers[0].in_features, len(scales), bias_=biases[0] is not None, dtype=torch.qint8)
        fused.set_weight_bias(q, None if biases[0] is None else torch.cat(biases))
        shared = _Shared()
        sizes = [x.out_features for x in layers]
        for index, (name, layer) in enumerate(zip(("query", "key", "value"), layers)):
            setattr(module, name, QKVSlice(layer, index, shared, sizes, fused if index == 0 else None))
        count += 1
    return count


def load_model(model_dir: Path, card: dict[str, Any], task: Any) -> nn.Module:
    """Rebuild the int8 model: fp32 skeleton from config.json, int8 layers swapped in."""
    with damaged_artifact(model_dir, "int8"):
        model, tensors = skeleton(model_dir, task)
        fp32, int8 = split_quantized(model, tensors)
        load_rest(model, fp32, int8)
    with _no_ao_deprecation():
        for name, (values, scale) in int8.items():
            _swap_linear(model, name, values, scale)
        if FUSE_QKV:
            fuse_qkv(model)
    return model
