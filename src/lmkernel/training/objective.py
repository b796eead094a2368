"""What one micro-batch contributes to the gradients: the training loop's objective seam.

The loop hands each micro-batch to an *objective*: a callable that runs the forwards it needs and
calls ``step.backward(loss)`` once or more (gradients add up), then returns the output whose
``.loss`` is logged. The plain objective is one forward and one backward. Adversarial training
(several forwards on perturbed embeddings), R-Drop (two forwards), and penalties such as EWC
(an extra backward of a term of the weights) are objectives too, so the loop never learns about them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch


def task_forward(task, model, batch: dict):
    """The task's own forward where it has one (a chat task runs a shared prompt prefix once),
    else ``model(**batch)``."""
    forward = getattr(task, "forward", None)
    return forward(model, batch) if forward is not None else model(**batch)


@dataclass
class Step:
    """One micro-batch as an objective sees it."""

    model: Any  # the prepared model (maybe DDP-wrapped): call it for forwards that train
    task: Any
    batch: dict
    backward: Callable[[torch.Tensor], None]  # accumulate the gradients of a loss (scaled for grad_accum)
    global_step: int  # the optimizer step this micro-batch belongs to (1-based)
    unwrap: Callable[[], Any]  # the bare model (its embeddings, its parameters)

    def forward(self, batch: dict | None = None):
        return task_forward(self.task, self.model, self.batch if batch is None else batch)


Objective = Callable[[Step], Any]


def plain(step: Step):
    """One forward, one backward of the task's loss."""
    out = step.forward()
    step.backward(out.loss)
    return out


def with_penalty(inner: Objective, penalty: Callable[[Any], torch.Tensor | None]) -> Objective:
    """``inner`` plus a term of the weights (e.g. EWC's), backpropagated separately: gradients add, so the
    sum is the gradient of ``loss + penalty`` without the objectives knowing of each other."""

    def objective(step: Step):
        out = inner(step)
        term = penalty(step.unwrap())
        if term is not None:
            step.backward(term)
        return out

    return objective
