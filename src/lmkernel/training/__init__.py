"""Training stage: an Accelerate loop with atomic, resumable checkpoints."""

from .loop import TrainResult, epochs_done, evaluate, train

__all__ = ["TrainResult", "epochs_done", "evaluate", "train"]
