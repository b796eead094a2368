"""The small-data rule: the batch size, epochs and learning rate a spec leaves unset, chosen from the
training data's size.

Fixed defaults (batch 32, 3 epochs) give a few hundred rows only a few dozen optimizer steps, too few
for a new classification head to learn; large data sets have steps to spare and keep batch 32 for
throughput. The rule, applied once after the data is read (classification and ner; other tasks keep
the fixed defaults):

1. ``batch_size``: 8 below 1,000 training rows, 16 below 5,000, else 32.
2. ``epochs``: enough passes for ``max(300, 10 x labels)`` optimizer steps, at least 3 and at most 30.
3. ``lr``: the tuning method's default, times ``sqrt(wanted steps / steps)`` (at most 2) when 30 epochs
   still give fewer steps than wanted (a few dozen rows): few steps need larger ones.
4. ``checkpoint_every`` (when it and ``eval_every`` are unset and an epoch is under 100 steps): the
   smallest whole number of epochs of at least 100 steps, so many short epochs do not each write a
   resumable checkpoint (the model and optimizer state); evaluation stays every epoch.

A value the spec sets is never changed, and the other values are chosen around it (a set batch size
still gets its epochs). ``train.auto: false`` turns the rule off. docs/smalldata.md states it for users.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

AUTO_TASKS = ("classification", "ner")
BATCH_BY_ROWS = ((1_000, 8), (5_000, 16))  # (rows below, batch size); larger data: LARGE_BATCH
LARGE_BATCH = 32
MIN_STEPS = 300
STEPS_PER_LABEL = 10  # more labels: more steps before every label's row of the head has moved
MIN_EPOCHS = 3
MAX_EPOCHS = 30
MAX_LR_SCALE = 2.0
MIN_CHECKPOINT_STEPS = 100
KEYS = ("batch_size", "epochs", "lr")


@dataclass
class Choice:
    """What the rule chose (``chosen``: spec key -> value) for ``rows`` training rows and ``labels`` labels;
    ``kept``: the keys the spec set, which the rule left alone."""

    rows: int
    labels: int
    wanted_steps: int
    steps: int
    chosen: dict[str, Any] = field(default_factory=dict)
    kept: list[str] = field(default_factory=list)

    def text(self) -> str:
        """One line for the log and the report: the values and why."""
        values = ", ".join(f"train.{k} {_fmt(v)}" for k, v in self.chosen.items()) or "nothing"
        why = (f"auto: {self.rows:,} training rows, {self.labels} labels -> {self.steps:,} optimizer steps "
               f"(rule: at least {self.wanted_steps:,}, {MIN_EPOCHS}-{MAX_EPOCHS} epochs; docs/smalldata.md)")
        kept = f"; set in the spec: {', '.join('train.' + k for k in self.kept)}" if self.kept else ""
        return f"{values} ({why}{kept})"


def _fmt(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def batch_for(rows: int) -> int:
    """Rule 1: smaller batches for smaller data, so an epoch has more optimizer steps."""
    for below, batch in BATCH_BY_ROWS:
        if rows < below:
            return batch
    return LARGE_BATCH


def steps_per_epoch(rows: int, batch_size: int, grad_accum: int = 1, world: int = 1) -> int:
    """Optimizer steps in one pass over ``rows`` (about: length grouping may make a batch more or less)."""
    return max(1, math.ceil(math.ceil(rows / (batch_size * world)) / grad_accum))


def decide(rows: int, labels: int, train: Any, default_lr: float, world: int = 1) -> Choice:
    """The rule for ``rows`` training rows and ``labels`` labels; ``train`` (a TrainSpec) says what the spec set
    (``unset_keys``) and holds the values kept."""
    unset = unset_keys(train)
    wanted = max(MIN_STEPS, STEPS_PER_LABEL * labels)
    batch = batch_for(rows) if "batch_size" in unset else train.batch_size
    per_epoch = steps_per_epoch(rows, batch, train.grad_accum, world)
    if "epochs" in unset:
        epochs = min(MAX_EPOCHS, max(MIN_EPOCHS, math.ceil(wanted / per_epoch)))
    else:
        epochs = train.epochs
    steps = train.max_steps or per_epoch * epochs
    choice = Choice(rows, labels, wanted, steps, kept=[k for k in KEYS if k not in unset])
    if "batch_size" in unset:
        choice.chosen["batch_size"] = batch
    if "epochs" in unset:
        choice.chosen["epochs"] = epochs
    if "lr" in unset:
        choice.chosen["lr"] = default_lr * min(MAX_LR_SCALE, max(1.0, math.sqrt(wanted / steps)))
    if (per_epoch < MIN_CHECKPOINT_STEPS and steps > per_epoch and
            not {"checkpoint_every", "eval_every"} & train.model_fields_set):
        choice.chosen["checkpoint_every"] = per_epoch * math.ceil(MIN_CHECKPOINT_STEPS / per_epoch)
    return choice


def unset_keys(train: Any) -> set[str]:
    """The keys of ``KEYS`` the spec left to the rule: not written (``train.lr`` holds the method's default)."""
    return {k for k in KEYS if k not in train.model_fields_set}


def apply(spec: Any, rows: int, labels: int, world: int = 1) -> Choice | None:
    """Set the chosen values on ``spec.train`` in place (so the run's spec.yaml records them); None where the
    rule does not apply (another task, ``train.auto: false``, every value set, or a method with its own
    training such as few-shot: the rule sizes the loop's steps, which that training does not take)."""
    if spec.task.type not in AUTO_TASKS or not spec.train.auto or not unset_keys(spec.train):
        return None
    from ..tuning import get_method

    if get_method(spec.tuning.method).hooks.fit is not None:  # its own training (fewshot): no loop steps to size
        return None
    default_lr = get_method(spec.tuning.method).lr(spec.tuning.options())
    choice = decide(rows, labels, spec.train, default_lr, world)
    for key, value in choice.chosen.items():
        setattr(spec.train, key, value)
    return choice
