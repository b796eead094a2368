"""Grow a sequence classifier's output layer for new labels, keeping the old labels' rows (and indices)."""

from __future__ import annotations

from typing import Any

from ..errors import LmkError

HEAD_NAMES = ("classifier", "out_proj", "score")  # BERT/MiniLM, RoBERTa/XLM-R, decoder heads


def _head(model, rows: int) -> tuple[Any, str, Any]:
    """(parent module, attribute, linear) of the output layer scoring ``rows`` labels."""
    import torch

    for name, module in reversed(list(model.named_modules())):
        last = name.rsplit(".", 1)[-1]
        if last in HEAD_NAMES and isinstance(module, torch.nn.Linear) and module.out_features == rows:
            parent = model.get_submodule(name.rsplit(".", 1)[0]) if "." in name else model
            return parent, last, module
    raise LmkError(f"cannot find the classifier's output layer ({rows} outputs) in {type(model).__name__}",
                   where="--continue-from", fix="continual learning supports transformers sequence classifiers "
                   "(a 'classifier', 'out_proj' or 'score' linear layer)")


def grow(model, old_labels: list[str], labels: list[str]) -> Any:
    """``model`` scoring ``labels`` (``old_labels`` first, in their order): the old rows copied, new rows drawn
    like a fresh head's (normal, the config's initializer_range) with the old rows' mean bias, so a new class
    starts neither favoured nor impossible."""
    import torch

    if labels[: len(old_labels)] != old_labels:
        raise ValueError("the new label list must start with the old labels")
    parent, attr, old = _head(model, len(old_labels))
    if len(labels) > len(old_labels):
        new = torch.nn.Linear(old.in_features, len(labels), bias=old.bias is not None,
                              device=old.weight.device, dtype=old.weight.dtype)
        std = float(getattr(model.config, "initializer_range", 0.02))
        with torch.no_grad():
            new.weight.normal_(0.0, std)
            new.weight[: len(old_labels)] = old.weight
            if old.bias is not None:
                new.bias.fill_(float(old.bias.mean()))
                new.bias[: len(old_labels)] = old.bias
        setattr(parent, attr, new)
    model.config.num_labels = len(labels)
    model.config.id2label = dict(enumerate(labels))
    model.config.label2id = {lab: i for i, lab in enumerate(labels)}
    if hasattr(model, "num_labels"):
        model.num_labels = len(labels)
    return model
