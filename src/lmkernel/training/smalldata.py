"""What a run adapts to its training data before training: the small-data rule's values
(``autoconf``) and the class weights of the loss (``class_weights``), logged, recorded in the run's
spec.yaml and in the report's summary. One call from ``pipeline.run``."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Prepared:
    class_weights: list[float] | None = None  # one per label (train.class_weights), for the training loss
    summary: dict[str, str] = field(default_factory=dict)  # report.md summary rows


def prepare(spec: Any, splits: dict[str, Any], labels: list[str], accelerator: Any, run_dir: Path) -> Prepared:
    """Apply the small-data rule to ``spec.train`` in place and weigh the labels (``train.class_weights``)."""
    from ..spec import save_spec
    from . import autoconf, class_weights

    out = Prepared()
    train = splits["train"].examples
    choice = autoconf.apply(spec, len(train), len(labels), accelerator.num_processes)
    if choice is not None:
        out.summary["small-data rule"] = choice.text()
        if accelerator.is_main_process:
            print(f"small-data rule: {choice.text()}")
            save_spec(spec, run_dir / "spec.yaml")  # resume and `lmkernel inspect` see the values chosen
    if spec.task.type == "classification":
        weights = class_weights.weights_for(spec.train.class_weights, labels, [e.label for e in train])
        if weights is not None:
            out.class_weights = weights
            out.summary["class weights"] = class_weights.describe(weights, labels, spec.train.class_weights)
    return out
