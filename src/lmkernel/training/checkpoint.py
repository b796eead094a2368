"""Atomic, resumable checkpoints that load without unpickling anything.

A checkpoint is written into ``step-N.tmp`` and renamed to ``step-N`` only when complete; the
``latest`` pointer is replaced atomically afterwards. A kill -9 at any moment leaves the last
good checkpoint untouched (at worst a stray ``.tmp`` folder, removed on the next save).

Every part is safetensors or JSON (``statefile``): the model weights (tied weights stored once),
the optimizer, scheduler and grad-scaler states, each process's RNG states and our loop position.
``trainer_state.json``, written last, lists every file with its size and SHA-256, so a resume
refuses a truncated or edited part, and any file it did not write (a ``*.pkl`` dropped into the
folder, an older pickle-based checkpoint), instead of loading it or silently going on without it.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shutil
import signal
from pathlib import Path
from typing import Any

from ..errors import LmkError
from ..fsutil import _fsync_dir, atomic_write_text, fsync_tree
from .statefile import decode, encode, read_part, write_part

STATE_FILE = "trainer_state.json"
METHOD_TENSORS = "method_state.safetensors"
MODEL_FILE = "model.safetensors"
FORMAT = "lmkernel-checkpoint/2"
PICKLE_SUFFIXES = (".pkl", ".pickle", ".bin", ".pt", ".pth", ".ckpt")
_STEP_DIR = re.compile(r"step-\d{8}")


def fault_point(name: str, step: int) -> None:
    """Crash-test hook: LMKERNEL_FAULT=name:step kills this process with SIGKILL right here.

    Lets tests prove that a kill -9 mid-epoch or mid-save loses nothing (see tests/e2e).
    """
    if os.environ.get("LMKERNEL_FAULT") == f"{name}:{step}":
        os.kill(os.getpid(), signal.SIGKILL)


def checkpoint_root(run_dir: Path) -> Path:
    return run_dir / "checkpoints"


def rng_state() -> dict[str, Any]:
    """This process's random generators: Python, NumPy, torch CPU and (when present) CUDA."""
    import numpy as np
    import torch

    state: dict[str, Any] = {"python": random.getstate(), "numpy": np.random.get_state(),
                             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    import numpy as np
    import torch

    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _sha256(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def save_checkpoint(accelerator, run_dir: Path, step: int, state: dict[str, Any], model, optimizer, scheduler,
                    tensors: dict[str, Any] | None = None) -> Path:
    """Save model, optimizer, scheduler, grad scaler, every process's RNG, our loop state and the tuning
    method's tensors, all as safetensors/JSON."""
    from safetensors.torch import save_file, save_model

    root = checkpoint_root(run_dir)
    final = root / f"step-{step:08d}"
    tmp = root / (final.name + ".tmp")
    if accelerator.is_main_process:
        root.mkdir(parents=True, exist_ok=True)
        for stale in root.glob("*.tmp"):
            shutil.rmtree(stale, ignore_errors=True)
        tmp.mkdir()
    accelerator.wait_for_everyone()
    write_part(tmp, f"rng-{accelerator.process_index}", rng_state())
    if accelerator.is_main_process:
        save_model(accelerator.unwrap_model(model), str(tmp / MODEL_FILE))  # tied weights kept once, silently
        write_part(tmp, "optimizer", optimizer.state_dict())
        write_part(tmp, "scheduler", scheduler.state_dict())
        if accelerator.scaler is not None:
            write_part(tmp, "scaler", accelerator.scaler.state_dict())
        if tensors is not None:
            save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp / METHOD_TENSORS))
            state = {**state, "method_tensors": True}
    accelerator.wait_for_everyone()
    fault_point("save", step)
    if accelerator.is_main_process:
        files = {p.name: {"bytes": p.stat().st_size, "sha256": _sha256(p)} for p in sorted(tmp.iterdir())}
        manifest = {"format": FORMAT, "processes": accelerator.num_processes, "files": files,
                    "state": encode(state, {})}
        manifest["checksum"] = _checksum(manifest)
        (tmp / STATE_FILE).write_text(json.dumps(manifest, indent=1, allow_nan=False) + "\n", encoding="utf-8")
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
        name = pointer.read_text().strip()
        if _STEP_DIR.fullmatch(name) and (root / name / STATE_FILE).exists():
            return root / name
    complete = sorted(p for p in root.glob("step-*") if _STEP_DIR.fullmatch(p.name) and (p / STATE_FILE).exists())
    return complete[-1] if complete else None


def _checksum(manifest: dict[str, Any]) -> str:
    """SHA-256 of the manifest's canonical JSON (its own checksum left out): the loop state it holds is
    checked like every other part, so an edited or bit-flipped value cannot load silently."""
    body = {k: v for k, v in manifest.items() if k != "checksum"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()).hexdigest()


def _refuse(path: Path, what: str, fix: str | None = None) -> LmkError:
    return LmkError(f"checkpoint {path.parent} cannot be loaded: {what}", where=str(path),
                    fix=fix or f"delete {path.parent} to resume from an earlier checkpoint, or start a fresh run "
                    "without --resume")


def _manifest(path: Path) -> dict[str, Any]:
    """The checkpoint's file list, after checking the folder holds exactly those files, intact."""
    try:
        manifest = json.loads((path / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise _refuse(path / STATE_FILE, f"{STATE_FILE} is damaged ({e})") from e
    pickles = sorted(p.name for p in path.iterdir() if p.suffix in PICKLE_SUFFIXES)
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        old = f" (it holds {', '.join(pickles)})" if pickles else ""
        raise _refuse(path / STATE_FILE, f"it was written by an earlier lmkernel in a pickle-based format{old}, "
                      "which lmkernel no longer loads because unpickling a file can run code",
                      fix="start a fresh run without --resume (the finished checkpoints cannot be converted)")
    try:
        intact = manifest.get("checksum") == _checksum(manifest)
    except (TypeError, ValueError):  # a value JSON cannot write back (e.g. an edited-in NaN)
        intact = False
    if not intact:
        raise _refuse(path / STATE_FILE, f"{STATE_FILE} was changed after it was written (its checksum differs)")
    files = manifest.get("files")
    if not isinstance(files, dict):
        raise _refuse(path / STATE_FILE, f"{STATE_FILE} has no file list")
    for p in sorted(path.iterdir()):
        if p.name == STATE_FILE or p.name in files:
            continue
        if p.suffix in PICKLE_SUFFIXES:
            raise _refuse(p, f"{p.name} is a pickle file lmkernel did not write; lmkernel never loads pickles "
                          "because unpickling a file can run code",
                          fix=f"delete {p} if you trust the rest of the checkpoint, or start a fresh run "
                          "without --resume")
        raise _refuse(p, f"{p.name} is not part of the checkpoint lmkernel wrote",
                      fix=f"delete {p}, or start a fresh run without --resume")
    for name, info in files.items():
        p = path / name
        if Path(name).name != name or name in (".", ".."):
            raise _refuse(path / STATE_FILE, f"{STATE_FILE} lists {name!r}, which is not a file in the checkpoint")
        if not p.is_file():
            raise _refuse(p, f"{name} is missing")
        size = p.stat().st_size
        if not isinstance(info, dict) or size != info.get("bytes"):
            raise _refuse(p, f"{name} is truncated or changed ({size} bytes, written as {info.get('bytes')})"
                          if isinstance(info, dict) else f"{name} has no size on record")
        if _sha256(p) != info.get("sha256"):
            raise _refuse(p, f"{name} is damaged (its SHA-256 differs from the one written)")
    return manifest


def load_checkpoint(accelerator, path: Path, model, optimizer, scheduler) -> dict[str, Any]:
    """Restore everything saved by ``save_checkpoint`` (RNG last); return the loop state."""
    from safetensors.torch import load_file, load_model

    manifest = _manifest(path)
    saved = manifest.get("processes")
    if saved != accelerator.num_processes:
        raise _refuse(path / STATE_FILE, f"it was written by {saved} training process(es), this run has "
                      f"{accelerator.num_processes}",
                      fix=f"resume with {saved} process(es), or start a fresh run without --resume")
    current = path / STATE_FILE
    try:
        state = decode(manifest["state"], {})
        current = path / MODEL_FILE
        load_model(accelerator.unwrap_model(model), str(current), strict=True)
        current = path / "optimizer.json"
        optimizer.load_state_dict(read_part(path, "optimizer"))
        current = path / "scheduler.json"
        scheduler.load_state_dict(read_part(path, "scheduler"))
        if accelerator.scaler is not None:
            current = path / "scaler.json"
            accelerator.scaler.load_state_dict(read_part(path, "scaler"))
        if state.get("method_tensors"):
            current = path / METHOD_TENSORS
            state["method_tensors"] = load_file(str(current))
        current = path / f"rng-{accelerator.process_index}.json"
        set_rng_state(read_part(path, f"rng-{accelerator.process_index}"))
    except Exception as e:  # damaged files surface as many different exception types
        first = str(e).splitlines()[0] if str(e) else ""
        raise _refuse(current, f"{current.name} does not load: {type(e).__name__}: {first}") from e
    if not (isinstance(state, dict) and isinstance(state.get("loop"), dict) and isinstance(state.get("result"), dict)):
        raise _refuse(path / STATE_FILE, f"{STATE_FILE} has no loop position")
    return state
