"""A faster GEMM call for the few-row products of token-by-token generation on CPU.

Decoding multiplies every weight matrix by a handful of rows (one per sequence in the batch).
``F.linear(x, W)`` computes ``x @ W.T``; for a few rows PyTorch's CPU GEMM runs that shape well
below what the same product runs at as ``(W @ x.T).T``. ``bench/experiments/few_rows.py`` measures
it on SmolLM2-135M's shapes: the layer matrices run faster this way at 2-4 rows, about even at 8-16
rows and slower at 64 rows (hence the switch at 32 rows); the vocabulary-wide output layer runs
faster at 1-8 rows (figures: docs/benchmark-history.md). One row runs as a 2-column GEMM of the row twice
(memory-bound, so the doubled FLOPs cost nothing): GEMV is slower. Hundreds of rows (prefill,
classification batches, training) keep plain ``linear``. Same weights, same result up to float
summation order.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

FEW_ROWS = 32  # at most this many rows: (W @ x.T).T; more: x @ W.T (bench/experiments/few_rows.py: 64 rows is slower)


class FewRowLinear(nn.Linear):
    """``nn.Linear`` whose few-row products use the faster GEMM orientation (CPU inference)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, self.in_features)
        if flat.shape[0] > FEW_ROWS or torch.is_grad_enabled():  # training keeps the plain path
            return F.linear(x, self.weight, self.bias)
        return few_row_linear(flat, self.weight, self.bias).contiguous().view(*x.shape[:-1], self.out_features)


def few_row_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """``F.linear`` of a 2-D ``x``, as ``(W @ x.T).T`` for up to FEW_ROWS rows (a transposed view).

    ``x`` is made row-major first: given a column-major ``x`` (such as this function's own output)
    the same GEMM runs much slower at 7-8 rows here (bench/experiments/few_rows.py --only layout)."""
    rows = x.shape[0]
    if rows > FEW_ROWS:
        return F.linear(x, weight, bias)
    x = x.contiguous()
    if rows == 1:  # a single row would run as GEMV, which is slower than a 2-column GEMM here
        x = torch.cat([x, x])
    out = torch.mm(weight, x.t())[:, :rows].t()
    return out if bias is None else out + bias


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
