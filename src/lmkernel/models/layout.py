"""A faster GEMM call for the few-row products of token-by-token generation on CPU.

Decoding multiplies every weight matrix by a handful of rows (one per sequence in the batch).
``F.linear(x, W)`` computes ``x @ W.T``; for 2-64 rows PyTorch's CPU GEMM runs that shape far
below what the same product runs at as ``(W @ x.T).T``. Measured on SmolLM2-135M's 210 layer
matrices streamed from memory (2 threads, AVX2): 8 rows 67.6 → 49.0 ms per pass, 4 rows 78.5 →
34.5 ms; a batch-8 decode step of the whole model 89 → 72 ms. One row runs as GEMV, slower than a
2-column GEMM of the row twice (memory-bound, so the doubled FLOPs cost nothing): the 49152 x 576
output layer 11.7 → 8.2 ms, the layers 36.6 → 35.5 ms per pass. For hundreds of rows
(classification batches, training) plain ``linear`` is faster again (960 rows: 125 vs 151 ms), so
the layer switches by row count. Same weights, same result up to float summation order.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

FEW_ROWS = 64  # at most this many rows: (W @ x.T).T; more: x @ W.T (measured crossover 40-256)


class FewRowLinear(nn.Linear):
    """``nn.Linear`` whose few-row products use the faster GEMM orientation (CPU inference)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, self.in_features)
        if flat.shape[0] > FEW_ROWS or torch.is_grad_enabled():  # training keeps the plain path
            return F.linear(x, self.weight, self.bias)
        rows = flat.shape[0]
        if rows == 1:  # a single row would run as GEMV, which is slower than a 2-column GEMM here
            flat = torch.cat([flat, flat])
        out = torch.mm(self.weight, flat.t())[:, :rows].t()
        if self.bias is not None:
            out = out + self.bias
        return out.contiguous().view(*x.shape[:-1], self.out_features)


def use_few_row_linears(model: nn.Module) -> int:
    """Switch the plain ``nn.Linear`` layers of a CPU model to ``FewRowLinear`` in place.

    Subclasses (quantized or LoRA layers) keep their own forward. Returns how many were switched;
    0 for a model that is not on the CPU, where the GPU's GEMM needs no such help.
    """
    if any(p.device.type != "cpu" for p in model.parameters()):
        return 0
    return retype_modules(model, nn.Linear, FewRowLinear)


def retype_modules(model: nn.Module, plain: type[nn.Module], faster: type[nn.Module]) -> int:
    """Give every module of exactly type ``plain`` the subclass ``faster`` (same state, new forward).

    Subclasses of ``plain`` are someone's own layers and keep theirs. Returns how many changed."""
    switched = 0
    for module in model.modules():
        if type(module) is plain:
            module.__class__ = faster
            switched += 1
    return switched
