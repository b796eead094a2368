"""``train.adversarial``'s options: a light module, so the spec imports it without torch."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from .specmodel import SpecModel

KINDS = ("none", "fgm", "pgd", "freelb")


class AdversarialSpec(SpecModel):
    """``train.adversarial``: a method name (``fgm``) or a section (``{method: pgd, epsilon: 0.5}``)."""

    method: Literal["none", "fgm", "pgd", "freelb"] = Field(
        "none", description="Embedding-space adversarial training: none, fgm (one step), pgd (K projected steps), "
        "freelb (K ascent steps, gradients averaged).")
    epsilon: float = Field(1.0, gt=0, description="Radius of the perturbation (L2 per example over the sequence's "
                           "word embeddings): fgm's step, pgd's and freelb's ball.")
    alpha: float = Field(0.3, gt=0, description="pgd/freelb: size of each ascent step (freelb also starts "
                         "from a random perturbation of this size).")
    steps: int = Field(3, ge=1, le=20, description="pgd/freelb: ascent steps K (a step costs one more forward "
                       "and backward).")
    warmup_steps: int = Field(0, ge=0, description="Optimizer steps trained on clean inputs only before "
                              "perturbations start.")

    @model_validator(mode="before")
    @classmethod
    def _bare_name(cls, data: Any) -> Any:
        """``train.adversarial: fgm`` (or ``null``) is shorthand for ``{method: fgm}``."""
        if data is None:
            return {"method": "none"}
        return {"method": data} if isinstance(data, str) else data


ROBUST_TASKS = ("classification", "ner")  # a label per row or per token: the regularised losses are written for those


def unsupported_options(task: str, train: Any) -> str | None:
    """Why ``train``'s adversarial/regularisation/robustness options do not fit ``task`` (None: they do)."""
    asked = [key for key, on in (("train.adversarial", train.adversarial.method != "none"),
                                 ("train.rdrop", bool(train.rdrop)),
                                 ("train.label_smoothing", bool(train.label_smoothing))) if on]
    if asked and task not in ROBUST_TASKS:
        return (f"{', '.join(asked)}: not available for task {task!r} (only {' and '.join(ROBUST_TASKS)}); "
                "remove them")
    if train.robustness and task != "classification":
        return f"train.robustness: the perturbation report is for classification, not {task!r}; remove it"
    return None
