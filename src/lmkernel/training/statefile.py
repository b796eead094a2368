"""Training state as JSON + safetensors: nothing a resume reads can run code.

Accelerate's ``save_state`` pickles the scheduler and RNG states and unpickles them on load, so a
crafted file in a run's checkpoint folder would run code on ``--resume``. Here every state dict
(optimizer, scheduler, RNG, grad scaler, our loop position) becomes plain JSON, its tensors going
into a safetensors file beside it. Containers JSON cannot hold exactly (tuples, int-keyed dicts,
NaN, numpy arrays) are tagged, so a state loads back bit for bit.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

_TAGS = ("__tensor__", "__tuple__", "__dict__", "__float__", "__ndarray__")


class StateFormatError(ValueError):
    """A state file that does not decode: truncated, edited or not ours."""


def encode(obj: Any, tensors: dict[str, torch.Tensor], path: str = "") -> Any:
    """``obj`` as JSON-able data; its tensors are moved into ``tensors`` under their path."""
    if isinstance(obj, torch.Tensor):
        key = f"{len(tensors)}:{path}"  # numbered: distinct even where two paths read alike ("a.b")
        tensors[key] = obj.detach().cpu().contiguous()
        return {"__tensor__": key}
    if isinstance(obj, np.ndarray):
        return {"__ndarray__": obj.tolist(), "dtype": str(obj.dtype)}
    if isinstance(obj, np.generic):
        return encode(obj.item(), tensors, path)
    if isinstance(obj, bool) or obj is None or isinstance(obj, (int, str)):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else {"__float__": repr(obj)}
    if isinstance(obj, tuple):
        return {"__tuple__": [encode(v, tensors, f"{path}.{i}") for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [encode(v, tensors, f"{path}.{i}") for i, v in enumerate(obj)]
    if isinstance(obj, dict):
        if all(isinstance(k, str) and not k.startswith("__") for k in obj):
            return {k: encode(v, tensors, f"{path}.{k}") for k, v in obj.items()}
        return {"__dict__": [[encode(k, tensors, f"{path}.key{i}"), encode(v, tensors, f"{path}.{i}")]
                             for i, (k, v) in enumerate(obj.items())]}
    raise TypeError(f"cannot store a {type(obj).__name__} in a training state at {path or 'the top'}")


def decode(data: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """The inverse of ``encode``; ``StateFormatError`` on anything it did not write."""
    if isinstance(data, list):
        return [decode(v, tensors) for v in data]
    if not isinstance(data, dict):
        if isinstance(data, float) and not math.isfinite(data):
            raise StateFormatError("a bare non-finite number")
        return data
    tag = next((k for k in data if k in _TAGS), None)
    if tag is None:
        if any(k.startswith("__") for k in data):
            raise StateFormatError(f"unknown entry {next(k for k in data if k.startswith('__'))!r}")
        return {k: decode(v, tensors) for k, v in data.items()}
    value = data[tag]
    if tag == "__tensor__":
        if not isinstance(value, str) or value not in tensors:
            raise StateFormatError(f"tensor {value!r} is missing from the tensor file")
        return tensors[value]
    if tag == "__tuple__" and isinstance(value, list):
        return tuple(decode(v, tensors) for v in value)
    if tag == "__dict__" and isinstance(value, list) and all(isinstance(p, list) and len(p) == 2 for p in value):
        return {_hashable(decode(k, tensors)): decode(v, tensors) for k, v in value}
    if tag == "__float__" and value in ("nan", "inf", "-inf"):
        return float(value)
    if tag == "__ndarray__" and isinstance(value, list):
        try:
            return np.asarray(value, dtype=np.dtype(data.get("dtype")))
        except (TypeError, ValueError, OverflowError) as e:
            raise StateFormatError(f"bad array: {e}") from e
    raise StateFormatError(f"malformed {tag} entry")


def _hashable(key: Any) -> Any:
    if isinstance(key, (torch.Tensor, np.ndarray)):
        raise StateFormatError("a dictionary key that is not a plain value")
    try:
        hash(key)
    except TypeError as e:
        raise StateFormatError("a dictionary key that is not a plain value") from e
    return key


def write_part(folder: Path, name: str, obj: Any) -> list[str]:
    """Write ``obj`` as ``name.json`` (+ ``name.safetensors`` when it holds tensors); return the file names."""
    from safetensors.torch import save_file

    tensors: dict[str, torch.Tensor] = {}
    data = encode(obj, tensors)
    files = [f"{name}.json"]
    (folder / files[0]).write_text(json.dumps(data, allow_nan=False, ensure_ascii=False) + "\n", encoding="utf-8")
    if tensors:
        files.append(f"{name}.safetensors")
        save_file(tensors, str(folder / files[1]))
    return files


def read_part(folder: Path, name: str) -> Any:
    """Read what ``write_part`` wrote. Raises ``StateFormatError`` (or the parsers' errors) when damaged."""
    from safetensors.torch import load_file

    data = json.loads((folder / f"{name}.json").read_text(encoding="utf-8"),
                      parse_constant=_refuse_constant)
    blob = folder / f"{name}.safetensors"
    tensors = load_file(str(blob)) if blob.exists() else {}
    return decode(data, tensors)


def _refuse_constant(name: str) -> Any:
    raise StateFormatError(f"bare {name} (not JSON)")
