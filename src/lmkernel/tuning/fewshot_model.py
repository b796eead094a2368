"""The few-shot classifier: an encoder, mean pooling, unit length, one linear layer.

SetFit's model is a sentence encoder whose pooled, normalised vectors feed a separate logistic regression.
Here both live in one torch module that answers like a transformers sequence classifier (``logits``, and
``loss`` given ``labels``), so evaluation, ``predict``, ``serve``, the trust profile (the head is called
``classifier``, whose input the feature capture reads) and ``explain`` (``get_input_embeddings``) take it
as they take any classifier. Its weights are one safetensors file; the base model's architecture is
rebuilt from the card's ``base_model`` and the weights loaded into it (the ``adapter`` path of
``artifact.load_model_weights``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import LmkError
from ..tasks.embedding_losses import sentence_vectors

WEIGHTS = "fewshot.safetensors"


class FewShotClassifier(nn.Module):
    """Mean-pooled, L2-normalised encoder vectors → ``classifier`` (a linear layer: a fitted logistic
    regression, or the class prototypes times a scale)."""

    def __init__(self, encoder: nn.Module, num_labels: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.config = encoder.config  # num_labels / id2label: what the artifact's label check reads
        self.classifier = nn.Linear(encoder.config.hidden_size, num_labels)

    def get_input_embeddings(self) -> nn.Module:
        return self.encoder.get_input_embeddings()

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Unit sentence vectors [B, H], float32 (the embedding seam's pooling)."""
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        return sentence_vectors(self.encoder, input_ids, attention_mask)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                labels: torch.Tensor | None = None, **_: Any) -> Any:
        from transformers.modeling_outputs import SequenceClassifierOutput

        logits = self.classifier(self.embed(input_ids, attention_mask))
        loss = nn.functional.cross_entropy(logits, labels) if labels is not None else None
        return SequenceClassifierOutput(loss=loss, logits=logits)


def is_decoder(model: nn.Module) -> bool:
    """A causal LM's classifier (it pools the last token; mean pooling and contrastive pairs are the
    recipe of sentence encoders)."""
    from ..models.decoder_heads import is_decoder_config

    config = getattr(model, "config", None)
    return config is not None and is_decoder_config(config.to_dict())


def from_sequence_classifier(model: nn.Module) -> FewShotClassifier:
    """The few-shot classifier on ``model``'s encoder (a ``*ForSequenceClassification`` of an encoder); its
    CLS pooler, unused by mean pooling, is dropped."""
    encoder = getattr(model, "base_model", None)
    if encoder is None or encoder is model:
        raise LmkError("tuning.method 'fewshot' needs a sequence classifier on an encoder, got a "
                       f"{type(model).__name__}",
                       where="tuning.method", fix="use an encoder backbone such as model.name: minilm")
    if getattr(encoder, "pooler", None) is not None:
        encoder.pooler = None
    return FewShotClassifier(encoder, int(model.config.num_labels))


def save(model: nn.Module, directory: Path, merge: bool) -> str:
    """The encoder and the head in one safetensors file; ``adapter``: loaded onto the rebuilt base model."""
    from safetensors.torch import save_file

    from .base import refuse_merge

    refuse_merge(merge, "the few-shot classifier mean-pools, which no transformers classifier class does")
    if not isinstance(model, FewShotClassifier):
        raise TypeError(f"fewshot save expects a FewShotClassifier, got {type(model).__name__}")
    save_file({k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}, str(directory / WEIGHTS))
    return "adapter"


def load(base: nn.Module, directory: Path, card: dict[str, Any]) -> FewShotClassifier:
    """The saved classifier, from a freshly built base model of the card's ``base_model``."""
    from safetensors.torch import load_file

    path = directory / WEIGHTS
    model = from_sequence_classifier(base)
    try:
        model.load_state_dict(load_file(str(path)), strict=True)
    except (OSError, RuntimeError, ValueError) as e:  # missing, damaged or another model's weights
        raise LmkError(f"cannot load the few-shot classifier in {path}: {e}", where=str(path),
                       fix=f"the file is damaged or does not match the base model {card.get('base_model')!r}; "
                       "re-run training") from None
    return model
