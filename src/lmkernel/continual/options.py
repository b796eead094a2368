"""The spec's ``continual:`` section: how a ``--continue-from`` run keeps what the previous stages learned.

Light on imports: ``spec.py`` reads it when a spec loads.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ..specmodel import SpecModel

METHODS = ("replay", "ewc", "replay+ewc", "none")


class ContinualSpec(SpecModel):
    """``continual:`` in a spec. Setting it on a first run stores what a later ``--continue-from`` needs (the
    replay buffer, the Fisher information, the held-out rows of the stage's task); ``--continue-from`` without
    it uses these defaults."""

    method: Literal["replay", "ewc", "replay+ewc", "none"] = Field(
        "replay+ewc", description="replay: mix stored examples of the old classes into the new training data; "
        "ewc: penalise moving the weights the old tasks need (elastic weight consolidation); replay+ewc: both; "
        "none: plain sequential fine-tuning (forgets; a baseline).")
    replay_per_class: int = Field(20, ge=1, le=100_000, description="Replay buffer: examples kept per class "
                                  "(a seeded uniform sample of every example of the class seen so far).")
    ewc_lambda: float = Field(2000.0, ge=0, description="EWC strength λ in λ/2 · Σ F_i (θ_i − θ*_i)².")
    ewc_decay: float = Field(1.0, ge=0, le=1, description="Online EWC: the stored Fisher is multiplied by this "
                             "before the new stage's is added (1: every stage counts alike).")
    fisher_samples: int = Field(256, ge=1, le=1_000_000, description="Training examples (one backward each) "
                                "the diagonal Fisher is estimated from at the end of a run.")
    heldout_per_task: int = Field(2000, ge=1, le=1_000_000, description="Held-out rows of this stage's task "
                                  "stored in the artifact (test split, else validation) for the accuracy matrix.")
    task_name: str | None = Field(None, description="This stage's task in the accuracy matrix (default: "
                                  "'stage N').")

    @property
    def replay(self) -> bool:
        return "replay" in self.method

    @property
    def ewc(self) -> bool:
        return "ewc" in self.method
