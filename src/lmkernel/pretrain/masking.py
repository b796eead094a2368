"""Masked-LM corruption: BERT's 15% with 80/10/10, per token or per whole word.

These few lines replace ``DataCollatorForLanguageModeling`` / ``DataCollatorForWholeWordMask``
because our blocks are packed (word boundaries come with the block, not from re-tokenizing its
text) and because one function serves both the dynamic training masks (global torch RNG, which
Accelerate checkpoints, so a resumed run draws the same masks) and the fixed validation masks
(a seeded generator, so validation loss is comparable between evaluations).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def mask_tokens(input_ids: torch.Tensor, *, mask_id: int, vocab_size: int, special_ids: Sequence[int],
                prob: float = 0.15, word_starts: torch.Tensor | None = None,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(corrupted inputs, labels with -100 on unselected tokens) for a (batch, length) id tensor.

    Each token (or each word, when ``word_starts`` marks the first token of every word) is selected
    with probability ``prob``; selected tokens become [MASK] 80% of the time, a random token 10%,
    and stay unchanged 10%. Special tokens are never selected.
    """
    shape = input_ids.shape
    if word_starts is None:
        chosen = torch.rand(shape, generator=generator) < prob
    else:
        word_id = word_starts.long().cumsum(-1)  # 0 for a continuation at the very start of the block
        draw = torch.rand((shape[0], shape[1] + 1), generator=generator) < prob
        chosen = draw.gather(1, word_id)
    special = torch.isin(input_ids, torch.tensor(list(special_ids), dtype=input_ids.dtype))
    chosen &= ~special
    labels = torch.where(chosen, input_ids, torch.full_like(input_ids, -100))
    how = torch.rand(shape, generator=generator)
    inputs = input_ids.clone()
    inputs[chosen & (how < 0.8)] = mask_id
    swap = chosen & (how >= 0.8) & (how < 0.9)
    inputs[swap] = torch.randint(vocab_size, shape, generator=generator, dtype=input_ids.dtype)[swap]
    return inputs, labels
