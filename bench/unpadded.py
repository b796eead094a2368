"""A server's classification batches: padded length groups against one unpadded sequence.

What the server's batch worker does with 32 requests in flight, without HTTP: random batches of
``--batch`` SST-2 dev sentences (tokenized by the artifact's tokenizer) through the served
classifier, either as ``serve.batcher.plan_groups`` cuts them (length groups, each padded to its
longest) or as ``models.unpadded.classify_unpadded`` runs them (one sequence, no padding). Both
alternate round by round on the same model; the logits of the first batch must agree.

    flock /tmp/lmk-bench.lock .venv/bin/python bench/unpadded.py [--run runs/sentiment] [--rounds 6]
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "bench"))


def grouped(model, items: list[list[int]]) -> torch.Tensor:
    """The batcher's padded path: longest first, cut by plan_groups, each group padded."""
    from lmkernel.serve.batcher import plan_groups

    order = sorted(range(len(items)), key=lambda i: -len(items[i]))
    out = torch.empty(len(items), model.config.num_labels)
    for group in plan_groups([len(items[i]) for i in order]):
        rows = [order[k] for k in group]
        width = max(len(items[i]) for i in rows)
        ids = torch.tensor([items[i] + [0] * (width - len(items[i])) for i in rows])
        mask = torch.tensor([[1] * len(items[i]) + [0] * (width - len(items[i])) for i in rows])
        out[rows] = model(input_ids=ids, attention_mask=mask).logits
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", type=Path, default=REPO / "runs" / "sentiment", help="a classification artifact")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--batches", type=int, default=40, help="batches per round and variant")
    ap.add_argument("--batch", type=int, default=32, help="texts per batch (the load test's 32 clients)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from rounds import alternate
    from serve_load import SST2_DEV, fp32_peak_gflops, read_sentences, useful_gflop

    import lmkernel
    from lmkernel.models.unpadded import classify_unpadded, supports_unpadded

    loaded = lmkernel.load(args.run)
    model = loaded.model.eval()
    if not supports_unpadded(model):
        raise SystemExit(f"{args.run}: {type(model).__name__} has no unpadded path (BERT-family classifiers only)")
    ids = loaded.tokenizer(read_sentences(SST2_DEV))["input_ids"]
    rng = random.Random(0)
    work = [rng.sample(ids, args.batch) for _ in range(args.batches)]
    tokens = sum(len(x) for b in work for x in b) / len(work)
    gflop = useful_gflop(args.run, [len(x) for b in work for x in b]) / len(work)  # per batch, no padding
    variants = {"padded length groups": grouped, "unpadded": classify_unpadded}
    peaks = [fp32_peak_gflops()]
    with torch.inference_mode():
        a, b = (fn(model, work[0]) for fn in variants.values())
        print(f"{len(work)} batches of {args.batch}, {tokens:.0f} tokens each on average; "
              f"first-batch logits differ by at most {(a - b).abs().max().item():.2e}", flush=True)
        med = alternate({name: lambda batch, fn=fn: fn(model, batch) for name, fn in variants.items()}, work,
                        args.rounds)
    peaks.append(fp32_peak_gflops())
    base, peak = med["padded length groups"], max(peaks)
    print(f"\nmedian of {args.rounds} rounds, ms per batch of {args.batch}: "
          + ", ".join(f"{n} {med[n] * 1000:.1f} ({args.batch / med[n]:.0f} texts/s, {base / med[n]:.2f}x, "
                      f"useful {gflop / med[n]:.0f} GFLOP/s = {100 * gflop / med[n] / peak:.0f}% of peak)"
                      for n in variants)
          + f"; fp32 matmul peak {peak:.0f} GFLOP/s (the higher of {peaks[0]:.0f} before and {peaks[1]:.0f} after)")


if __name__ == "__main__":
    main()
