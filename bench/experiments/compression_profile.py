"""Where the int8 model's time goes: fp32 vs int8 (with and without the fused QKV GEMM), then
``torch.profiler`` tables of the fp32 and int8 forwards over every 4th batch of the run's
validation set (batch 32).

    flock /tmp/lmk-bench.lock .venv/bin/python bench/experiments/compression_profile.py RUN INT8_RUN

RUN is the fine-tuned run, INT8_RUN its ``--method int8`` copy (e.g. from bench/compression.py
--workdir). Timings are best of 3 passes, the models taking turns.
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))


def main(run: str, int8_run: str) -> None:
    import torch
    from torch.profiler import ProfilerActivity, profile

    from lmkernel.artifact import load
    from lmkernel.compress import int8
    from lmkernel.compress.measure import _batches, eval_data

    warnings.filterwarnings("ignore")
    src = load(run, backend="exact")
    data = eval_data(src)
    batches = [{k: v for k, v in b.items() if k != "labels"} for b in _batches(src, data.examples, 32)][::4]
    models = {"fp32": src.model, "int8": load(int8_run, backend="exact").model}
    int8.FUSE_QKV = False
    models["int8-unfused"] = load(int8_run, backend="exact").model

    def run_all(model) -> None:
        for b in batches:
            model(**b)

    with torch.inference_mode():
        for model in models.values():
            model(**batches[0])
        times: dict[str, list[float]] = {k: [] for k in models}
        for _ in range(3):
            for name, model in models.items():
                start = time.perf_counter()
                run_all(model)
                times[name].append(time.perf_counter() - start)
        for name, t in times.items():
            print(f"{name:14s} best {min(t):.3f}s  x{min(times['fp32']) / min(t):.2f}")
        for name in ("fp32", "int8"):
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                run_all(models[name])
            print(name)
            print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    main(sys.argv[1], sys.argv[2])
