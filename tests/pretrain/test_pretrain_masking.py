"""MLM masking: 15% of tokens, split 80/10/10, never special tokens; whole words masked together."""

from __future__ import annotations

import torch

from lmkernel.pretrain.masking import mask_tokens

SPECIAL = [0, 1, 2, 3, 4]  # pad unk cls sep mask
MASK, VOCAB = 4, 1000


def test_token_masking_statistics():
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(5, VOCAB, (200, 256), generator=gen)
    ids[:, 0], ids[:, -1] = 2, 3
    inputs, labels = mask_tokens(ids, mask_id=MASK, vocab_size=VOCAB, special_ids=SPECIAL, prob=0.15, generator=gen)
    chosen = labels != -100
    share = chosen[:, 1:-1].float().mean().item()
    assert abs(share - 0.15) < 0.005  # 51k tokens: sd of the share ~0.0016
    assert not chosen[:, 0].any() and not chosen[:, -1].any()  # [CLS]/[SEP] never chosen
    assert torch.equal(labels[chosen], ids[chosen]) and torch.equal(inputs[~chosen], ids[~chosen])
    n = chosen.sum().item()
    masked = (inputs[chosen] == MASK).sum().item() / n
    kept = (inputs[chosen] == ids[chosen]).sum().item() / n
    random_ = 1 - masked - kept
    assert abs(masked - 0.8) < 0.01 and abs(kept - 0.1) < 0.01 and abs(random_ - 0.1) < 0.01


def test_masking_is_dynamic_but_seeded():
    ids = torch.randint(5, VOCAB, (4, 64), generator=torch.Generator().manual_seed(1))
    kw = {"mask_id": MASK, "vocab_size": VOCAB, "special_ids": SPECIAL}
    a = mask_tokens(ids, **kw, generator=torch.Generator().manual_seed(5))[1]
    b = mask_tokens(ids, **kw, generator=torch.Generator().manual_seed(5))[1]
    c = mask_tokens(ids, **kw, generator=torch.Generator().manual_seed(6))[1]
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_whole_word_masking_masks_all_pieces_of_a_word():
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(5, VOCAB, (100, 120), generator=gen)
    starts = torch.tensor([1, 0, 0] * 40).repeat(100, 1)  # three-token words
    _, labels = mask_tokens(ids, mask_id=MASK, vocab_size=VOCAB, special_ids=SPECIAL, prob=0.15,
                            word_starts=starts, generator=gen)
    chosen = (labels != -100).view(100, 40, 3)
    assert torch.equal(chosen.all(-1), chosen.any(-1))  # a word is masked entirely or not at all
    assert abs(chosen.float().mean().item() - 0.15) < 0.02
