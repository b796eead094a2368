"""Would fusing SmolLM2's projections that share an input into one GEMM make a LoRA step faster?

A LoRA step runs, per linear layer, the forward GEMM ``x Wᵀ`` and the input-gradient GEMM ``dy W`` (the
base weights are frozen, so no weight gradient). q/k/v (576 -> 576, 192, 192) read the same input, and so do
gate/up (576 -> 1536, 1536); LitGPT fuses q/k/v into one weight. This times both GEMMs of each group as
separate layers and as one fused layer, on a batch's worth of rows (8 pairs x ~55 tokens), in alternating
rounds, with torch's threads as in training.

    flock /tmp/lmk-bench.lock .venv/bin/python bench/experiments/fused_projections.py [--rows 440] [--rounds 4]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

GROUPS = {"q/k/v": [576, 192, 192], "gate/up": [1536, 1536]}
HIDDEN = 576


def seconds(x: torch.Tensor, weights: list[torch.Tensor], grads: list[torch.Tensor], reps: int) -> float:
    """Per repetition: forward and input-gradient GEMM of every weight."""
    for _ in range(5):
        for w, g in zip(weights, grads):
            x @ w.t(), g @ w
    t = time.perf_counter()
    for _ in range(reps):
        for w, g in zip(weights, grads):
            x @ w.t(), g @ w
    return (time.perf_counter() - t) / reps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=440, help="tokens in a batch (8 Multi30k pairs: ~440)")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--reps", type=int, default=200)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    x = torch.randn(args.rows, HIDDEN)
    for name, outs in GROUPS.items():
        separate = [torch.randn(o, HIDDEN) for o in outs]
        fused = [torch.cat(separate)]
        flop = 2 * 2 * args.rows * HIDDEN * sum(outs)
        ratios = []
        for r in range(args.rounds):
            order = [("separate", separate), ("fused", fused)]
            got = {}
            for label, ws in (order if r % 2 == 0 else order[::-1]):
                got[label] = seconds(x, ws, [torch.randn(args.rows, w.shape[0]) for w in ws], args.reps)
            ratios.append(got["separate"] / got["fused"])
            print(f"{name} round {r}: separate {got['separate'] * 1e3:.2f} ms ({flop / got['separate'] / 1e9:.0f} "
                  f"GFLOP/s), fused {got['fused'] * 1e3:.2f} ms ({flop / got['fused'] / 1e9:.0f} GFLOP/s)", flush=True)
        print(f"{name}: fused is {statistics.median(ratios):.2f}x the separate layers' speed (median of "
              f"{args.rounds} rounds)")


if __name__ == "__main__":
    main()
