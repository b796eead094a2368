"""The pooled features a classifier's head reads, captured during the forward pass that makes the logits.

The out-of-distribution detector scores these features, so prediction must not run the model twice:
a forward pre-hook on the classification head keeps a reference to the head's input (BERT, MiniLM,
DistilBERT: the pooled vector; RoBERTa-style heads: the sequence, of which the first token is used).
Causal-LM classifiers pool at the last real token inside their forward; they have no capture here and
their runs get a trust profile without the out-of-distribution part.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


def _head(model: Any) -> Any | None:
    """The classification head module of a (possibly peft-wrapped) sequence classifier, or None."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    if type(base).__name__.endswith("ForCausalLM"):
        return None
    head = getattr(base, "classifier", None)
    return head if head is not None and callable(head) else None


def supports_features(model: Any) -> bool:
    """True when the model's pooled features can be captured (a torch ``classifier`` head)."""
    import torch

    return isinstance(_head(model), torch.nn.Module)


class FeatureCapture:
    """Holds the last batch's pooled features, float32 (texts, hidden), after each forward."""

    def __init__(self) -> None:
        self.value = None

    def __call__(self, module: Any, args: tuple) -> None:
        x = args[0] if args else None
        if x is None:
            return
        if x.dim() == 3:  # a head that pools itself (RoBERTa): it reads the first token
            x = x[:, 0]
        self.value = x.detach().float()

    def take(self):
        """The captured features, cleared so a stale batch is never read twice."""
        value, self.value = self.value, None
        return value


def attach(model: Any) -> tuple[FeatureCapture, Any] | None:
    """A permanent capture on the model's head (the server's predictor): ``(capture, hook handle)`` or None."""
    if not supports_features(model):
        return None
    capture = FeatureCapture()
    return capture, _head(model).register_forward_pre_hook(capture)


@contextmanager
def captured(model: Any) -> Iterator[FeatureCapture | None]:
    """A capture on the model's head for the duration of the block (None: this model has none)."""
    attached = attach(model)
    try:
        yield attached[0] if attached else None
    finally:
        if attached:
            attached[1].remove()


def collect(model: Any, tokenizer: Any, texts: list[str], *, max_length: int,
            batch_size: int = 64) -> tuple[Any, Any | None]:
    """Softmax probabilities (texts, labels) and pooled features (texts, hidden) or None, in text order,
    from one forward per batch."""
    import numpy as np
    import torch

    from ..data.batching import eval_batches
    from ..models.decoder_heads import batch_pad_id
    from ..tasks.classification import ClassificationTask

    model.eval()
    device = next(model.parameters()).device
    ids = tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"]
    pad = batch_pad_id(model, tokenizer)
    probs = [None] * len(texts)
    feats: list[Any] = [None] * len(texts)
    with torch.no_grad(), captured(model) as capture:
        for idx in eval_batches([len(s) for s in ids], batch_size):
            batch = ClassificationTask().collate([{"input_ids": ids[i]} for i in idx], pad)
            logits = model(**{k: v.to(device) for k, v in batch.items()}).logits.float()
            p = torch.softmax(logits, -1).cpu().numpy()
            f = capture.take().cpu().numpy() if capture is not None else None
            for row, i in enumerate(idx):
                probs[i] = p[row]
                feats[i] = f[row] if f is not None else None
    features = np.stack(feats).astype(np.float32) if texts and feats[0] is not None else None
    return np.stack(probs).astype(np.float32), features
