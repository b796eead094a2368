"""One-off: the served MiniLM classifier's batch forward in fp32 (packed), bf16 autocast (unpacked) and
bf16 autocast with bf16-packed linear layers, on the same batches.

    .venv/bin/python bench/experiments/bf16_serving.py [--batch 64] [--rounds 30]
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "src"))
SST2 = REPO.parent / "shared" / "data" / "sst2" / "dev.tsv"


def main() -> None:
    import torch

    from lmkernel.models.packed import pack_linears
    from lmkernel.models.resolve import load_tokenizer, resolve_model_path
    from lmkernel.models.unpadded import classify_unpadded
    from lmkernel.tasks import get_task

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--rounds", type=int, default=30)
    args = p.parse_args()
    path = resolve_model_path("minilm")
    tok = load_tokenizer(path)
    texts = [line.split("\t")[0] for line in SST2.read_text(encoding="utf-8").splitlines()[1:]]
    batches = [tok(texts[i:i + args.batch])["input_ids"] for i in range(0, args.batch * 8, args.batch)]
    torch.manual_seed(0)
    base = get_task("classification").build_model(path, ["negative", "positive"]).eval()
    variants: dict = {"fp32 packed": (copy.deepcopy(base), torch.float32, False),
                "bf16 autocast": (copy.deepcopy(base), None, True),
                "bf16 packed": (copy.deepcopy(base), torch.bfloat16, True),
                "bf16 model": (copy.deepcopy(base).to(torch.bfloat16), torch.bfloat16, False)}
    for model, dtype, _ in variants.values():
        if dtype is not None:
            assert pack_linears(model, dtype) > 0
    times: dict[str, list[float]] = {k: [] for k in variants}
    logits = {}
    with torch.inference_mode():
        for r in range(args.rounds + 2):
            for name, (model, _, autocast) in variants.items():
                ctx = torch.autocast("cpu", dtype=torch.bfloat16) if autocast else torch.autocast("cpu", enabled=False)
                start = time.perf_counter()
                with ctx:
                    out = [classify_unpadded(model, b).float() for b in batches]
                if r >= 2:
                    times[name].append((time.perf_counter() - start) / len(batches))
                logits[name] = torch.cat(out)
    print(f"CPU capability: {torch.backends.cpu.get_cpu_capability()}, threads {torch.get_num_threads()}")
    ref = statistics.median(times["fp32 packed"])
    for name, ts in times.items():
        agree = (logits[name].argmax(-1) == logits["fp32 packed"].argmax(-1)).float().mean()
        print(f"{name:14} {statistics.median(ts) * 1e3:7.1f} ms/batch  {ref / statistics.median(ts):4.2f}x fp32  "
              f"max |dlogit| {float((logits[name] - logits['fp32 packed']).abs().max()):.3f}  same label {agree:.1%}")


if __name__ == "__main__":
    main()
