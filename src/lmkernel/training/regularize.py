"""Label smoothing, R-Drop and class weights as a change of the task's training loss, seen by every objective.

Both replace the loss a forward returns, so they are a wrapper around the task's forward (a proxy task
in the ``Step``), not a separate objective: the plain objective, an adversarial one or a penalty around
them all train the regularised loss without knowing of it. R-Drop (Liang et al. 2021) runs the batch
twice in one forward (concatenated, so each copy draws its own dropout masks) and adds the symmetric KL
between the two predictive distributions; with dropout off the two copies agree and the term is zero.
"""

from __future__ import annotations

import dataclasses
from typing import Any

IGNORE = -100  # labels the loss skips (NER's padding and sub-word pieces)


def smoothed_cross_entropy(logits, labels, smoothing: float, weight=None):
    """Mean cross-entropy over the labelled rows (classification) or tokens (ner), labels smoothed; with
    ``weight`` (one per label, ``train.class_weights``) averaged over the rows' weights as torch does."""
    import torch.nn.functional as F

    flat = logits.float().reshape(-1, logits.shape[-1])
    w = None if weight is None else weight.to(device=flat.device, dtype=flat.dtype)
    return F.cross_entropy(flat, labels.reshape(-1), weight=w, ignore_index=IGNORE, label_smoothing=smoothing)


def symmetric_kl(logits_a, logits_b, labels):
    """(KL(p_a || p_b) + KL(p_b || p_a)) / 2, averaged over the labelled rows or tokens."""
    import torch.nn.functional as F

    c = logits_a.shape[-1]
    a, b = logits_a.float().reshape(-1, c), logits_b.float().reshape(-1, c)
    keep = labels.reshape(-1) != IGNORE
    a, b = F.log_softmax(a[keep], -1), F.log_softmax(b[keep], -1)
    if a.shape[0] == 0:
        return a.sum() * 0.0
    kl = F.kl_div(a, b, log_target=True, reduction="none") + F.kl_div(b, a, log_target=True, reduction="none")
    return kl.sum(-1).mean() / 2


class RegularizedTask:
    """The task, with a forward whose loss is label-smoothed and/or R-Drop'd; everything else delegated."""

    def __init__(self, task: Any, smoothing: float, rdrop: float | None, weight: Any = None) -> None:
        self._task, self.smoothing, self.rdrop, self.weight = task, smoothing, rdrop, weight

    def __getattr__(self, name: str) -> Any:
        return getattr(self._task, name)

    def forward(self, model, batch: dict):
        import torch

        from .objective import task_forward

        labels = batch["labels"]
        inputs = {k: v for k, v in batch.items() if k != "labels"}
        if self.rdrop:
            inputs = {k: torch.cat([v, v]) for k, v in inputs.items()}
        out = task_forward(self._task, model, inputs)
        logits = out.logits
        if self.rdrop:
            first, second = logits.chunk(2)
            loss = (smoothed_cross_entropy(first, labels, self.smoothing, self.weight)
                    + smoothed_cross_entropy(second, labels, self.smoothing, self.weight)) / 2
            out.loss = loss + self.rdrop * symmetric_kl(first, second, labels)
            out.logits = first
        else:
            out.loss = smoothed_cross_entropy(logits, labels, self.smoothing, self.weight)
        return out


def regularized(inner, smoothing: float, rdrop: float | None, weight: Any = None):
    """An objective: ``inner`` run on a step whose task computes the regularised (and class-weighted) loss."""

    def objective(step):
        if "labels" not in step.batch:  # nothing to regularise (a batch without targets)
            return inner(step)
        return inner(dataclasses.replace(step, task=RegularizedTask(step.task, smoothing, rdrop, weight)))

    return objective
