"""Dropout with a cheaper mask on CPU: the same Bernoulli(1 - p) mask, drawn 16 bits at a time.

``nn.Dropout`` on CPU draws its mask with ``bernoulli_``, one generator call per element, many times
the cost of the multiply that applies it, and a visible share of a small encoder's training step
(torch.profiler). This module draws one 64-bit random word
per four elements and keeps an element when its 16-bit slice lies above a threshold: keep
probability ``round((1 - p) * 65536) / 65536`` (0.899994 for p = 0.1), outputs scaled by the
inverse of exactly that probability, so the expectation is unchanged. Randomness comes from torch's
default generator, so seeded runs repeat and a resumed run (which restores that generator) draws the
same masks.

GPUs draw dropout masks with a counter-based generator that is already cheap: the swap is for CPU
models only.
"""

from __future__ import annotations

import torch
from torch import nn

from ..models.layout import retype_modules

_WORD = 4  # 16-bit slices per 64-bit random word


class CheapMaskDropout(nn.Dropout):
    """``nn.Dropout`` whose training-mode mask comes from 16-bit slices of 64-bit random words."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        if self.p >= 1.0:
            return x * 0.0
        keep = round((1.0 - self.p) * 65536)
        n = x.numel()
        words = torch.randint(-(2**63), 2**63 - 1, ((n + _WORD - 1) // _WORD,), dtype=torch.int64, device=x.device)
        kept = words.view(torch.int16)[:n].view(x.shape) > (32767 - keep)  # P(kept) = keep / 65536
        mask = kept.to(x.dtype).mul_(65536.0 / keep)
        return x.mul_(mask) if self.inplace else x * mask


def use_cheap_dropout(model: nn.Module) -> int:
    """Switch the plain ``nn.Dropout`` modules to ``CheapMaskDropout`` in place (for CPU training).

    Returns how many were switched. Dropout inside fused attention kernels
    (``scaled_dot_product_attention(dropout_p=...)``) is not a module and keeps its own mask.
    """
    return retype_modules(model, nn.Dropout, CheapMaskDropout)
