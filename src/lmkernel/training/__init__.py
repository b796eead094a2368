"""Training stage: an Accelerate loop with atomic, resumable checkpoints."""

from .loop import TrainResult, evaluate, train

__all__ = ["TrainResult", "evaluate", "train"]
