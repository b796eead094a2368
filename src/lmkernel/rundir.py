"""The run directory: choose it (never overwriting an earlier run), create it with the resolved spec,
and leave a finished run lean. Shared by every training command (run, pretrain, compress)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import LmkError
from .spec import Spec, save_spec


@dataclass
class RunResult:
    run_dir: Path
    metrics: dict[str, Any]


def _run_dir_in_use(path: Path) -> bool:
    return path.exists() and any(path.iterdir())


def choose_run_dir(wanted: Path, resume: bool) -> Path:
    """The run directory: ``wanted``, or ``wanted-2``, ``-3``... so no earlier run is overwritten."""
    if resume:
        if not (wanted / "checkpoints").exists():
            raise LmkError(f"nothing to resume in {wanted}: it has no checkpoints", where=str(wanted),
                           fix="run without --resume to start a new run (finished runs keep no checkpoint "
                           "unless train.keep_optimizer is true)")
        return wanted
    if not _run_dir_in_use(wanted):
        return wanted
    if (wanted / "checkpoints").exists() and not (wanted / "metrics.json").exists():
        print(f"note: {wanted} holds an unfinished run; pass --resume to continue it. Starting a new run.")
    n = 2
    while _run_dir_in_use(wanted.with_name(f"{wanted.name}-{n}")):
        n += 1
    return wanted.with_name(f"{wanted.name}-{n}")


def start_run(spec: Spec, resume: bool):
    """Threads, the accelerator and the run directory (chosen on the main process, shared with the
    others), with the resolved spec saved in it: the first steps of every training command."""
    import torch
    from accelerate.utils import broadcast_object_list

    from .device import make_accelerator

    if spec.train.threads:
        torch.set_num_threads(spec.train.threads)
    accelerator = make_accelerator(spec.train.precision)
    holder = [choose_run_dir(Path(spec.output.dir), resume) if accelerator.is_main_process else None]
    if accelerator.num_processes > 1:
        broadcast_object_list(holder)
    run_dir = Path(holder[0])
    spec = spec.model_copy(deep=True)
    spec.output.dir = run_dir
    if accelerator.is_main_process:
        run_dir.mkdir(parents=True, exist_ok=True)
        save_spec(spec, run_dir / "spec.yaml")
    return accelerator, spec, run_dir


def cleanup(run_dir: Path, keep_optimizer: bool) -> None:
    """Finished runs stay lean: drop the resumable state unless asked to keep it."""
    import shutil

    root = run_dir / "checkpoints"
    if not root.exists():
        return
    (root / "best.safetensors").unlink(missing_ok=True)
    if not keep_optimizer:
        shutil.rmtree(root, ignore_errors=True)
