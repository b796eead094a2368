"""Continual learning: ``lmkernel run spec.yaml --continue-from RUN`` trains a classifier on new data and new
labels without forgetting the old ones (replay buffer + EWC), and reports the stage × task accuracy matrix.

``begin(spec, continue_from)`` is what the pipeline calls; it returns None for an ordinary run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def begin(spec: Any, continue_from: str | Path | None):
    """The run's continual stage, or None when the spec has no ``continual:`` and no run to continue from."""
    if continue_from is None and getattr(spec, "continual", None) is None:
        return None
    from .stage import Stage

    return Stage.begin(spec, continue_from)
