"""Reading compressed artifacts back: one place for the steps every weight kind shares.

int8, weight-only and pruned artifacts all store ``config.json`` plus one safetensors file whose
tensors do not fit a plain ``from_pretrained`` (int8 values with scales, resized Linears). Each
loader builds an fp32 skeleton from the config, then puts its own layers in; whatever goes wrong
on the way is a damaged artifact, and the user hears that with the file and the fix.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from torch import nn

from ..errors import LmkError

WEIGHTS_FILE = "model.safetensors"
SCALE = "_scale"  # "<module>.weight_scale" holds the per-row scales of the quantized "<module>.weight"


@contextlib.contextmanager
def damaged_artifact(model_dir: Path, kind: str) -> Iterator[None]:
    """Turn any failure while reading ``kind`` weights into one LmkError naming the file and the fix."""
    try:
        yield
    except LmkError:
        raise
    except Exception as e:  # SafetensorError, OSError, shape mismatches ...
        raise LmkError(f"cannot load {kind} weights from {model_dir}: {str(e).splitlines()[0] if str(e) else e!r}",
                       where=str(model_dir / WEIGHTS_FILE),
                       fix="the artifact is damaged; re-create it with `lmkernel compress`") from e


def skeleton(model_dir: Path, task: Any) -> tuple[nn.Module, dict[str, Any]]:
    """(randomly initialised model of the artifact's config and task head, the stored tensors)."""
    import transformers
    from safetensors.torch import load_file

    from ..models.decoder_heads import register_token_heads

    register_token_heads()
    config = transformers.AutoConfig.from_pretrained(str(model_dir), local_files_only=True)
    tensors = load_file(str(model_dir / WEIGHTS_FILE))
    return getattr(transformers, task.auto_model).from_config(config), tensors


def split_quantized(model: nn.Module, tensors: dict[str, Any], extra: tuple[str, ...] = ()
                    ) -> tuple[dict[str, Any], dict[str, tuple]]:
    """Split stored tensors into fp32 state and quantized Linears.

    Returns (fp32 state dict, {linear module name: (values, scale, *extra tensors or None)}).
    Quantized embeddings are dequantized into the fp32 state: lookups gain nothing from int8."""
    fp32: dict[str, Any] = {}
    quantized: dict[str, tuple] = {}
    for key, value in tensors.items():
        if key.endswith((SCALE, *extra)):
            continue
        scale = tensors.get(key + SCALE)
        module_name = key.rpartition(".")[0]
        if scale is None:
            fp32[key] = value
        elif isinstance(model.get_submodule(module_name), nn.Embedding):
            fp32[key] = value.float() * scale[:, None]
        else:
            quantized[module_name] = (value, scale, *(tensors.get(key + s) for s in extra))
    return fp32, quantized


def load_rest(model: nn.Module, fp32: dict[str, Any], quantized: dict[str, tuple]) -> None:
    """Load the fp32 tensors; any weight that is neither stored nor quantized means a damaged file.

    Raises:
        ValueError: missing or unexpected tensors (``damaged_artifact`` turns it into an LmkError).
    """
    missing, unexpected = model.load_state_dict(fp32, strict=False)
    params = dict(model.named_parameters(remove_duplicate=False))
    loaded = {id(params[k]) for k in fp32 if k in params}  # a tied lm_head is the stored embedding
    missing = [k for k in missing
               if not (k.rpartition(".")[0] in quantized and k.endswith(".weight"))
               and not (k in params and id(params[k]) in loaded)]
    if missing or unexpected:
        raise ValueError(f"weights do not match config.json (missing {missing[:3]}, unexpected {unexpected[:3]})")
