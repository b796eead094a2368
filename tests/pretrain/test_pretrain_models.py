"""Presets, overrides and real parameter counts of the from-scratch models."""

from __future__ import annotations

import pytest

from lmkernel.errors import LmkError
from lmkernel.pretrain.models import PRESETS, build_model, dimensions


class FakeTok:
    def __init__(self, n: int):
        self.n = n
        self.pad_token_id, self.bos_token_id, self.eos_token_id = 0, 1, 1

    def __len__(self) -> int:
        return self.n


def _params(arch: str, preset: str, vocab: int = 8000, **over) -> int:
    model = build_model(arch, dimensions(preset, over), FakeTok(vocab), 512)
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("arch,expected", [("encoder", 1.51e6), ("decoder", 1.55e6)])
def test_tiny_preset_counts_match_the_documented_ones(arch, expected):
    n = _params(arch, "tiny")
    print(f"{arch} tiny, vocab 8000: {n:,} parameters")
    assert abs(n - expected) / expected < 0.01


def test_overrides_change_the_model_and_bad_heads_are_an_error():
    model = build_model("decoder", dimensions("tiny", {"hidden_size": 64, "num_layers": 3, "num_heads": 4,
                                                      "num_kv_heads": 2, "intermediate_size": 96}), FakeTok(500), 256)
    c = model.config
    assert (c.hidden_size, c.num_hidden_layers, c.num_attention_heads, c.num_key_value_heads,
            c.intermediate_size, c.vocab_size) == (64, 3, 4, 2, 96, 500)
    with pytest.raises(LmkError, match="divisible"):
        dimensions("tiny", {"hidden_size": 100, "num_heads": 3})
    assert set(PRESETS) == {"tiny", "small", "base"}


@pytest.mark.slow
@pytest.mark.parametrize("preset,enc,dec", [("small", 8.57e6, 10.44e6), ("base", 92.2e6, 119.4e6)])
def test_bigger_presets_counts(preset, enc, dec):
    assert abs(_params("encoder", preset) - enc) / enc < 0.01
    assert abs(_params("decoder", preset) - dec) / dec < 0.01
