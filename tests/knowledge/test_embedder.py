"""The embedding seam: unit vectors in input order, a model identity that tells two models apart."""

from __future__ import annotations

import numpy as np
import pytest

from lmkernel.errors import LmkError
from lmkernel.knowledge.embedder import load_embedder, mean_pool


def test_mean_pool_ignores_padding():
    import torch

    hidden = torch.tensor([[[1.0, 1.0], [3.0, 3.0], [100.0, 100.0]]])
    mask = torch.tensor([[1, 1, 0]])
    assert mean_pool(hidden, mask).tolist() == [[2.0, 2.0]]


def test_vectors_are_unit_length_and_keep_order(tiny_bert):
    emb = load_embedder(str(tiny_bert))
    texts = ["the film was great", "a", "房间 太差", "the hotel was awful and the room was bad"]
    together = emb.embed(texts, batch_size=2)
    assert together.shape == (4, 32) and together.dtype == np.float32
    assert np.allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)
    one_by_one = np.stack([emb.embed(t)[0] for t in texts])  # batching and length sorting change nothing
    assert np.allclose(together, one_by_one, atol=1e-5)
    assert emb.embed([]).shape == (0, 32)


def test_identity_tells_models_apart(tiny_bert, tmp_path):
    import torch
    from transformers import BertModel

    emb = load_embedder(str(tiny_bert))
    ident = emb.identity
    assert ident["dim"] == 32 and emb.matches(ident)
    other = tmp_path / "other"
    torch.manual_seed(1)
    model = BertModel.from_pretrained(str(tiny_bert))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.5)
    model.save_pretrained(other)
    for name in ("vocab.txt", "tokenizer_config.json", "special_tokens_map.json"):
        if (tiny_bert / name).exists():
            (other / name).write_bytes((tiny_bert / name).read_bytes())
    assert not load_embedder(str(other)).matches(ident)
    assert not emb.matches({**ident, "dim": 31})


def test_a_decoder_alias_is_refused_with_a_fix():
    with pytest.raises(LmkError, match="not a sentence encoder"):
        load_embedder("smollm2")
