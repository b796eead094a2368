"""The training objective a spec asks for: label smoothing, R-Drop and adversarial training composed.

Order, inside out: the base objective (plain, or one another stage built) sees the regularised loss;
the adversarial method wraps it and runs it on clean and perturbed inputs. A penalty of the weights
(EWC) belongs outside, ``with_penalty(build_objective(...), term)``, so it is added once per step.
"""

from __future__ import annotations

from typing import Any

from ..adversarialspec import ROBUST_TASKS
from ..errors import LmkError


def wanted(opts: Any) -> list[str]:
    """The spec keys that ask for something beyond the plain objective."""
    keys = []
    if opts.label_smoothing:
        keys.append(f"train.label_smoothing={opts.label_smoothing:g}")
    if opts.rdrop:
        keys.append(f"train.rdrop={opts.rdrop:g}")
    if opts.adversarial.method != "none":
        keys.append(f"train.adversarial={opts.adversarial.method}")
    return keys


def build_objective(opts: Any, task: Any, base=None, class_weights: list[float] | None = None):
    """The objective for ``train`` (a TrainSpec), or ``base`` (None: the task's plain loss) when nothing is asked.
    ``class_weights`` (one per label, from ``train.class_weights``) weigh the same regularised loss.

    Raises:
        LmkError: one of these options on a task other than classification or ner.
    """
    from .objective import plain

    inner = base or plain
    keys = wanted(opts)
    if not keys and class_weights is None:
        return base
    if task.name not in ROBUST_TASKS:
        raise LmkError(f"{', '.join(keys)}: not available for task {task.name!r}",
                       where="train", fix=f"these options are for {' and '.join(ROBUST_TASKS)}; remove them for "
                       f"{task.name}")
    if opts.label_smoothing or opts.rdrop or class_weights is not None:
        import torch

        from .regularize import regularized

        weight = None if class_weights is None else torch.tensor(class_weights, dtype=torch.float32)
        inner = regularized(inner, opts.label_smoothing, opts.rdrop, weight)
    if opts.adversarial.method != "none":
        from .adversarial import Adversarial

        inner = Adversarial(inner, opts.adversarial)
    return inner


def objective_stats(objective: Any) -> dict[str, int]:
    """The counters an objective keeps (adversarial batches, skipped non-finite passes) for the report."""
    return dict(getattr(objective, "stats", {}))
