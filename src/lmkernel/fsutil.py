"""Atomic file writes: a reader sees the old file or the new one, never half of either."""

from __future__ import annotations

import json
import math
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)``, fsync it, then rename over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"))


def finite_json(obj: Any) -> Any:
    """``obj`` with every NaN/inf float as None: ``json.dumps`` would write bare ``NaN``, which is not JSON."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_json(v) for v in obj]
    return obj


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    """Strict JSON (NaN/inf written as null) that any parser reads."""
    text = json.dumps(finite_json(obj), indent=2, ensure_ascii=False, default=str, allow_nan=False) + "\n"
    return atomic_write_text(path, text)


def fsync_tree(path: Path) -> None:
    """Flush every file under ``path`` to disk, so a rename that publishes it publishes complete files."""
    for root, _dirs, files in os.walk(path):
        for name in files:
            with open(os.path.join(root, name), "rb") as fh:
                os.fsync(fh.fileno())


def atomic_replace_dir(tmp_dir: Path, final_dir: Path) -> None:
    """Move a fully written ``tmp_dir`` into place as ``final_dir``.

    A directory cannot be renamed over a non-empty one, so the old one is first renamed aside
    and removed only after the new one is in place. Two processes may publish the same folder at
    once (two servers building one ONNX copy): the aside name carries the process id, and a
    rename that finds the other's folder already back in place sets it aside again, so the
    folder ends up complete, from whichever process came last.
    """
    fsync_tree(tmp_dir)
    old = final_dir.with_name(f"{final_dir.name}.old{os.getpid()}")
    for attempt in range(3):
        if old.exists():
            shutil.rmtree(old)
        if final_dir.exists():
            os.replace(final_dir, old)
        try:
            os.replace(tmp_dir, final_dir)
            break
        except OSError:  # ENOTEMPTY/EEXIST: another process put its folder back in between
            if attempt == 2 or not final_dir.exists():
                raise
    _fsync_dir(final_dir.parent)
    if old.exists():
        shutil.rmtree(old)
