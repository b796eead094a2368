"""Devices and precision: pick what is fast on the hardware we actually run on.

bf16 is only a win where the hardware has bf16 matrix units: on a CPU with AVX512-BF16 or AMX a
bf16 GEMM runs well above fp32, on an AVX2-only CPU far below it (BASELINES.md). So ``auto`` looks
at the CPU flags instead of assuming.
"""

from __future__ import annotations

import functools
from pathlib import Path

import torch

from .errors import LmkError


@functools.lru_cache(maxsize=1)
def cpu_has_fast_bf16() -> bool:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    return "avx512_bf16" in flags or "amx_bf16" in flags


def choose_precision(requested: str) -> str:
    """Accelerate's mixed_precision value ("no", "bf16", "fp16") for the spec's train.precision."""
    cuda = torch.cuda.is_available()
    if requested == "auto":
        if cuda:
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return "bf16" if cpu_has_fast_bf16() else "no"
    if requested == "fp16" and not cuda:
        raise LmkError("train.precision: fp16 needs a GPU", where="train.precision",
                       fix="use auto, fp32 or bf16 on a CPU")
    return {"fp32": "no"}.get(requested, requested)


def make_accelerator(precision: str):
    """An Accelerator for this process; in a single process, earlier state is dropped first so a
    Python session can run several jobs with different precisions (Accelerate's state is global)."""
    import os

    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    if int(os.environ.get("WORLD_SIZE", "1")) == 1:
        AcceleratorState._reset_state(reset_partial_state=True)
    return Accelerator(mixed_precision=choose_precision(precision), cpu=not torch.cuda.is_available())
