"""Classification and NER heads on causal-LM backbones (Llama, SmolLM2, Qwen2, Gemma 3).

A decoder has no [CLS] token: transformers' ``*ForSequenceClassification`` scores every position and
keeps the rightmost one whose id is not ``config.pad_token_id``, so the pad id decides which token is
pooled. It must be set, and be the id the batches are padded with; then the pooled token is the last
real one whether a batch is padded on the right (lmkernel's own batches) or on the left (a tokenizer
with ``padding_side="left"``, e.g. Gemma's). A tokenizer without a pad token pads with its end-of-text
token, else its unknown token. A text that itself ends in that token is pooled at the token before it,
alone or batched alike.

Token classification keeps the attention causal, as the backbone was trained: a word's tag is read at
its last sub-token, which has seen the word and the words before it, none after (``tasks/ner.py``).
Gemma 3 has no token-classification class in transformers; ``register_token_heads`` adds one built the
way transformers builds Llama's.

Nothing here imports torch at module level: the spec asks ``is_decoder_backbone`` while validating.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import LmkError

# model_type of decoder-only checkpoints whose transformers classes pool from the last token
DECODER_TYPES = frozenset({
    "llama", "mistral", "mixtral", "qwen2", "qwen2_moe", "qwen3", "qwen3_moe", "gemma", "gemma2", "gemma3",
    "gemma3_text", "phi", "phi3", "gpt2", "gpt_neox", "olmo", "olmo2", "smollm3", "granite", "stablelm",
    "starcoder2", "falcon", "cohere",
})


def is_decoder_config(config: dict[str, Any]) -> bool:
    """A config.json dict of a decoder-only model (its type, or a ``*ForCausalLM`` architecture)."""
    if config.get("model_type") in DECODER_TYPES:
        return True
    return any(str(a).endswith("ForCausalLM") for a in config.get("architectures") or [])


def is_decoder_backbone(name: str | Path | None) -> bool:
    """Whether ``model.name`` (an alias, a checkpoint or run folder) is a causal LM, read from the alias
    table or config.json without loading anything; False when it cannot tell (the spec's later checks
    report a missing model)."""
    from .resolve import ALIASES

    if name is None:
        return False
    if str(name) in ALIASES:
        return ALIASES[str(name)].decoder
    path = Path(name).expanduser()
    for candidate in (path / "config.json", path / "model" / "config.json"):
        try:
            return is_decoder_config(json.loads(candidate.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            continue
    return False


def is_decoder_model(model: Any) -> bool:
    config = getattr(model, "config", None)
    return config is not None and is_decoder_config({"model_type": getattr(config, "model_type", None),
                                                     "architectures": getattr(config, "architectures", None)})


def ensure_pad_token(tokenizer: Any) -> int:
    """The tokenizer's pad id, giving it one first when it has none: its end-of-text token, else its
    unknown token (both already in the vocabulary, so no embedding row is added).

    Raises:
        LmkError: the tokenizer has none of pad, eos and unk tokens.
    """
    if tokenizer.pad_token_id is None:
        for token in (tokenizer.eos_token, tokenizer.unk_token):
            if token is not None:
                tokenizer.pad_token = token
                break
        else:
            raise LmkError("the tokenizer has no pad, end-of-text or unknown token to pad batches with",
                           where="model.name", fix="add a pad token to the checkpoint's tokenizer "
                           "(tokenizer.pad_token = ...; tokenizer.save_pretrained(folder))")
    return tokenizer.pad_token_id


def head_kwargs(path: Path) -> dict[str, Any]:
    """``from_pretrained`` keyword arguments for a task head on the checkpoint at ``path``: a decoder's
    ``pad_token_id`` (the pooling of sequence classification depends on it); none for encoders."""
    try:
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not is_decoder_config(config):
        return {}
    from .resolve import load_tokenizer

    return {"pad_token_id": ensure_pad_token(load_tokenizer(path))}


def batch_pad_id(model: Any, tokenizer: Any) -> int:
    """The id to pad a batch with: a decoder's ``config.pad_token_id`` (it pools by it), else the
    tokenizer's pad id, else 0 (an encoder masks its pads, so their id does not matter)."""
    config_pad = getattr(getattr(model, "config", None), "pad_token_id", None)
    if isinstance(config_pad, int) and is_decoder_model(model):
        return config_pad
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0


_REGISTERED = False


def register_token_heads() -> None:
    """Give ``AutoModelForTokenClassification`` a Gemma 3 (text) class: transformers' generic token head
    (dropout, then a linear layer on every position) over ``Gemma3TextModel``, as its Llama one is built."""
    global _REGISTERED
    if _REGISTERED:
        return
    from transformers import AutoModelForTokenClassification, Gemma3TextConfig
    from transformers.modeling_layers import GenericForTokenClassification
    from transformers.models.gemma3.modeling_gemma3 import Gemma3PreTrainedModel

    class Gemma3TextForTokenClassification(GenericForTokenClassification, Gemma3PreTrainedModel):
        config_class = Gemma3TextConfig
        input_modalities = ("text",)

    Gemma3TextForTokenClassification.__module__ = __name__
    globals()["Gemma3TextForTokenClassification"] = Gemma3TextForTokenClassification
    # exist_ok: transformers otherwise skips registrations for its own config classes
    AutoModelForTokenClassification.register(Gemma3TextConfig, Gemma3TextForTokenClassification, exist_ok=True)
    _REGISTERED = True
