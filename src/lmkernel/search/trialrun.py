"""What a search trial (`lmkernel train --trial`) writes when its training ends: metrics.json, and the model
only when the trial beats the best the search held when it started.

A trial exists to give the search one number (its best validation metric, already in ``progress.jsonl``).
The rest of an ordinary run's ending costs CPU time the search pays once per trial and never reads: the
final re-evaluation of the validation split, the error analysis, the trust profile (a pass over the
training data), explanations, report.md and its plots, and the resumable checkpoints at each evaluation
(a killed search trains an interrupted trial again from the start). A trial that cannot be the search's best keeps no
model either: the best trial's run dir always holds one (report.py picks the earliest trial of the best
value, which beat every trial finished before it started).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..evaluation.metrics import improved
from ..fsutil import atomic_write_json
from ..training.loop import NO_CHECKPOINTS


@dataclass(frozen=True)
class TrialMode:
    beat: float | None = None  # the search's best value when the trial started; None: none yet, keep the model
    NO_CHECKPOINTS = NO_CHECKPOINTS  # train.checkpoint_every for a trial: none, not even the loop's last
    probes: int = 0  # validation looks per epoch for the search's pruner (training/loop.py, _Loop.probe)

    def keeps_model(self, value: float | None, metric: str) -> bool:
        """Save the model when no trial has finished yet, or when this one is strictly better."""
        if value is None:
            return False
        return self.beat is None or improved(value, self.beat, metric)


def best_eval(history: list[dict[str, Any]], step: int | None) -> dict[str, Any]:
    """The validation metrics the loop logged at the best step (the weights the run kept)."""
    for entry in reversed(history):
        if "eval" in entry and entry["step"] == step:
            return entry["eval"]
    return {}


def finish_trial(mode: TrialMode, spec: Any, run_dir: Path, result: Any, save: Any) -> dict[str, Any]:
    """Write metrics.json (the best evaluation, the training figures) and, when the trial may be the search's
    best, the model through ``save(validation metrics)``; return the metrics."""
    metric = spec.train.metric
    kept = mode.keeps_model(result.best_metric, metric)
    validation = best_eval(result.history, result.best_step)
    out: dict[str, Any] = {k: v for k, v in validation.items() if isinstance(v, int | float)}
    out.update({"validation": validation, "trial": {"model_saved": kept, "beat": mode.beat},
                "training": {"optimizer steps": result.global_step, "epochs trained": round(result.epochs_trained, 3),
                             "best step": result.best_step, f"best {metric}": result.best_metric,
                             "train time (s)": round(result.train_seconds, 1), "stopped early": result.stopped_early}})
    if kept:
        save(validation)
    atomic_write_json(run_dir / "metrics.json", out)
    return out
