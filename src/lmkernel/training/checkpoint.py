"""Atomic, resumable checkpoints.

A checkpoint is written into ``step-N.tmp`` and renamed to ``step-N`` only when complete; the
``latest`` pointer is replaced atomically afterwards. A kill -9 at any moment leaves the last
good checkpoint untouched (at worst a stray ``.tmp`` folder, removed on the next save).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
from pathlib import Path
from typing import Any

from ..errors import LmkError
from ..fsutil import _fsync_dir, atomic_write_json, atomic_write_text, fsync_tree

STATE_FILE = "trainer_state.json"


def fault_point(name: str, step: int) -> None:
    """Crash-test hook: LMKERNEL_FAULT=name:step kills this process with SIGKILL right here.

    Lets tests prove that a kill -9 mid-epoch or mid-save loses nothing (see tests/e2e).
    """
    if os.environ.get("LMKERNEL_FAULT") == f"{name}:{step}":
        os.kill(os.getpid(), signal.SIGKILL)


def checkpoint_root(run_dir: Path) -> Path:
    return run_dir / "checkpoints"


METHOD_TENSORS = "method_state.safetensors"


def save_checkpoint(accelerator, run_dir: Path, step: int, state: dict[str, Any],
                    tensors: dict[str, Any] | None = None) -> Path:
    """Save model, optimizer, scheduler, RNG (via Accelerate), our loop state and the tuning method's
    tensors (safetensors, no pickle)."""
    root = checkpoint_root(run_dir)
    final = root / f"step-{step:08d}"
    tmp = root / (final.name + ".tmp")
    if accelerator.is_main_process:
        root.mkdir(parents=True, exist_ok=True)
        for stale in root.glob("*.tmp"):
            shutil.rmtree(stale, ignore_errors=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp), safe_serialization=True)
    accelerator.wait_for_everyone()
    fault_point("save", step)
    if accelerator.is_main_process:
        if tensors is not None:
            from safetensors.torch import save_file

            save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp / METHOD_TENSORS))
            state = {**state, "method_tensors": True}
        atomic_write_json(tmp / STATE_FILE, state)
        fsync_tree(tmp)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        _fsync_dir(root)
        atomic_write_text(root / "latest", final.name + "\n")
        for old in root.glob("step-*"):
            if old.is_dir() and old.name != final.name and not old.name.endswith(".tmp"):
                shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The newest complete checkpoint, or None."""
    root = checkpoint_root(run_dir)
    pointer = root / "latest"
    if pointer.exists():
        candidate = root / pointer.read_text().strip()
        if (candidate / STATE_FILE).exists():
            return candidate
    complete = sorted(p for p in root.glob("step-*") if p.is_dir() and (p / STATE_FILE).exists())
    return complete[-1] if complete else None


def load_checkpoint(accelerator, path: Path) -> dict[str, Any]:
    """Restore everything saved by ``save_checkpoint``; return the loop state."""
    try:
        state = json.loads((path / STATE_FILE).read_text())
        accelerator.load_state(str(path))
        if state.get("method_tensors"):
            from safetensors.torch import load_file

            state["method_tensors"] = load_file(str(path / METHOD_TENSORS))
    except Exception as e:  # corrupt files surface as many different exception types
        raise LmkError(
            f"checkpoint {path} cannot be loaded: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}",
            where=str(path),
            fix=f"delete {path} to resume from an earlier checkpoint, or start a fresh run without --resume",
        ) from e
    return state
