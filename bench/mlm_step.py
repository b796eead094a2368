"""One masked-LM training step: lmkernel's pretrain task forward against ``BertForMaskedLM``'s own.

    .venv/bin/python bench/mlm_step.py [--vocab 34783] [--batch 32] [--length 128] [--rounds 3] [--steps 5]

Same model (MiniLM's shape: 6 layers, 384 wide, 12 heads; the vocabulary MiniLM has after
``tokenizer.extend`` on examples/zh's corpus), same batch and 15 % masks, AdamW, bf16 autocast where the
CPU runs it fast (fp32 otherwise). The plain step is ``model(**batch).loss.backward()``, which projects
every position onto the vocabulary; lmkernel's (``PretrainTask.forward``) projects only the masked ones.
Rounds alternate the two so load drift hits both alike; prints seconds per step and the ratio.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vocab", type=int, default=34783)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--length", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=5, help="timed steps per round and side")
    args = ap.parse_args()
    import torch
    from transformers import BertConfig, BertForMaskedLM

    from lmkernel.device import cpu_has_fast_bf16
    from lmkernel.tasks.pretrain import Options, PretrainTask

    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=args.vocab, hidden_size=384, num_hidden_layers=6, num_attention_heads=12,
                     intermediate_size=1536)
    model = BertForMaskedLM(cfg).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    ids = torch.randint(1000, args.vocab, (args.batch, args.length))
    labels = torch.full_like(ids, -100)
    chosen = torch.rand(ids.shape) < 0.15
    labels[chosen] = ids[chosen]
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}
    task = PretrainTask(Options(type="pretrain", objective="mlm"))
    bf16 = cpu_has_fast_bf16()
    sides = {"plain": lambda: model(**batch), "lmkernel": lambda: task.forward(model, batch)}

    def step(forward) -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = forward()
        out.loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    times: dict[str, list[float]] = {k: [] for k in sides}
    for forward in sides.values():
        step(forward)  # warm-up
    for _ in range(args.rounds):
        for name, forward in sides.items():
            t0 = time.perf_counter()
            for _ in range(args.steps):
                step(forward)
            times[name].append((time.perf_counter() - t0) / args.steps)
    plain, lmk = statistics.median(times["plain"]), statistics.median(times["lmkernel"])
    print(f"cpu capability {torch.backends.cpu.get_cpu_capability()}, bf16 autocast {bf16}, threads "
          f"{torch.get_num_threads()}, vocab {args.vocab}, batch {args.batch}x{args.length}")
    print(f"plain BertForMaskedLM step: {plain:.3f} s; lmkernel step: {lmk:.3f} s; speed-up {plain / lmk:.2f}x")


if __name__ == "__main__":
    main()
