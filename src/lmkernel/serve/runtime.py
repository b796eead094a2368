"""``lmkernel serve --runtime onnx|onnx-int8``: serve an ONNX Runtime copy of the artifact's weights.

ONNX Runtime ran the MiniLM classifier's dynamic batches faster than PyTorch eager on CPU when
both padded them, because it fuses attention, GELU and LayerNorm (bench/serve_load.py). The
default PyTorch runtime has since overtaken it for BERT-family classifiers (unpadded batches,
packed linear layers, the last layer at [CLS] only; see BENCHMARKS.md); ONNX Runtime remains for
other encoders and for deployments that want its runtime.
The copy is what ``lmkernel compress -m onnx [--quantize int8]`` writes, built once and kept under
the run folder (``<run>/serving/<runtime>/model``) next to a fingerprint of the weights it came
from: retraining the run in place makes it stale, and the next start rebuilds it. The build goes
through the compression method's own writer, so it lands whole or not at all. Unlike ``lmkernel
compress``, nothing is measured here: int8 changes the model's outputs slightly, and whoever asks
for it at serve time accepts that (``compress`` reports the accuracy change when that is in doubt).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from ..errors import LmkError

RUNTIMES = {"torch": None, "onnx": {}, "onnx-int8": {"quantize": "int8"}}
CACHE = "serving"
SOURCE_FILE = "source.json"

log = logging.getLogger("lmkernel.serve")


def check_runtime(runtime: str, model_dir: Path, card: dict, precision: str) -> None:
    """Fail before the server starts when ``runtime`` cannot serve this artifact."""
    from ..compress import get_method

    if runtime not in RUNTIMES:
        raise LmkError(f"--runtime {runtime!r} is not known", where="--runtime",
                       fix="use one of: " + ", ".join(RUNTIMES))
    if RUNTIMES[runtime] is None:
        return
    if precision == "bf16":
        raise LmkError(f"--precision bf16 is a PyTorch autocast; --runtime {runtime} runs ONNX Runtime",
                       where="--precision", fix="drop --precision or use --runtime torch")
    from ..compress.workflow import SOURCE_WEIGHTS

    tasks = get_method("onnx").tasks
    if card["task"] not in tasks:
        raise LmkError(f"--runtime {runtime} serves {', '.join(tasks)} artifacts; {model_dir} is {card['task']!r}",
                       where="--runtime", fix="serve it with --runtime torch (the default)")
    if card["weights"] not in SOURCE_WEIGHTS:
        raise LmkError(f"{model_dir} is already compressed (weights: {card['weights']}) and runs in its own runtime",
                       where="--runtime", fix="serve it with --runtime torch (the default)")


def runtime_model_dir(model_dir: Path, runtime: str) -> Path:
    """The model folder to serve for ``runtime``: ``model_dir`` itself for torch, else the ONNX copy,
    built (or rebuilt when stale) under the run folder."""
    if RUNTIMES.get(runtime) is None:
        return model_dir
    from ..artifact import load
    from ..compress import get_method
    from ..compress.backend import fingerprint
    from ..compress.measure import run_dir_of
    from ..compress.workflow import write_artifact
    from ..fsutil import atomic_write_json

    root = run_dir_of(Path(model_dir).resolve()) / CACHE / runtime
    target, stamp = root / "model", root / SOURCE_FILE
    wanted = fingerprint(model_dir)
    try:
        if target.is_dir() and stamp.is_file() and json.loads(stamp.read_text())["fingerprint"] == wanted:
            return target
    except (OSError, ValueError, KeyError):
        pass  # unreadable stamp: rebuild
    log.info("building the %s copy of %s in %s (once; reused while the weights do not change)",
             runtime, model_dir, target)
    try:
        root.mkdir(parents=True, exist_ok=True)
        write_artifact(get_method("onnx"), load(model_dir, backend="exact"), target, dict(RUNTIMES[runtime]))
        atomic_write_json(stamp, {"source": str(model_dir), "fingerprint": wanted})
    except OSError as e:
        flags = "".join(f" --{k} {v}" for k, v in RUNTIMES[runtime].items())
        raise LmkError(f"cannot write the {runtime} copy under {root}: {e}", where="--runtime",
                       fix=f"make the run folder writable, or build the copy elsewhere with `lmkernel compress "
                       f"{model_dir} -m onnx{flags} --out DIR` and serve DIR") from e
    return target
