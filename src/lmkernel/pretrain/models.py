"""Untrained models from ``transformers`` configs: BERT encoders (masked LM), Llama decoders (causal LM).

Presets are (layers, hidden, heads, MLP width); every dimension can be overridden in the spec.
Parameter counts with an 8k vocabulary (tests/pretrain/test_models.py prints them):

| preset | layers x hidden | heads | MLP  | encoder (BERT MLM) | decoder (Llama, tied embeddings) |
|--------|-----------------|-------|------|--------------------|----------------------------------|
| tiny   | 2 x 128         | 2     | 512  | 1.51 M             | 1.55 M                           |
| small  | 8 x 256         | 4     | 1024 | 8.57 M             | 10.44 M                          |
| base   | 12 x 768        | 12    | 3072 | 92.2 M             | 119.4 M                          |

(The embedding table is vocab x hidden, so a 30k vocabulary adds 2.8M to tiny and 17M to base.)
"""

from __future__ import annotations

from typing import Any

PRESETS: dict[str, dict[str, int]] = {
    "tiny": {"num_layers": 2, "hidden_size": 128, "num_heads": 2, "intermediate_size": 512},
    "small": {"num_layers": 8, "hidden_size": 256, "num_heads": 4, "intermediate_size": 1024},
    "base": {"num_layers": 12, "hidden_size": 768, "num_heads": 12, "intermediate_size": 3072},
}


def dimensions(preset: str, overrides: dict[str, int | None]) -> dict[str, int]:
    """The preset's dimensions with the spec's non-null overrides applied."""
    dims = dict(PRESETS[preset])
    dims.update({k: v for k, v in overrides.items() if v is not None})
    if dims["hidden_size"] % dims["num_heads"]:
        from ..errors import LmkError

        raise LmkError(f"model.hidden_size {dims['hidden_size']} is not divisible by model.num_heads "
                       f"{dims['num_heads']}", where="model.hidden_size", fix="pick a head count that divides it")
    return dims


def build_model(arch: str, dims: dict[str, int], tokenizer: Any, max_positions: int):
    """A freshly initialised BertForMaskedLM (encoder) or LlamaForCausalLM (decoder) for ``tokenizer``."""
    vocab = len(tokenizer)
    if arch == "encoder":
        from transformers import BertConfig, BertForMaskedLM

        config = BertConfig(vocab_size=vocab, hidden_size=dims["hidden_size"], num_hidden_layers=dims["num_layers"],
                            num_attention_heads=dims["num_heads"], intermediate_size=dims["intermediate_size"],
                            max_position_embeddings=max_positions, pad_token_id=tokenizer.pad_token_id)
        return BertForMaskedLM(config)
    from transformers import LlamaConfig, LlamaForCausalLM

    heads = dims["num_heads"]
    config = LlamaConfig(vocab_size=vocab, hidden_size=dims["hidden_size"], num_hidden_layers=dims["num_layers"],
                         num_attention_heads=heads, num_key_value_heads=dims.get("num_kv_heads") or heads,
                         intermediate_size=dims["intermediate_size"], max_position_embeddings=max_positions,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True)
    return LlamaForCausalLM(config)
