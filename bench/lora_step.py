"""One LoRA training step, peft's forward against the addmm forward of ``training/lora.py``.

A random-init Llama with SmolLM2-135M's config (30 layers, hidden 576, MLP 1536, 49,152-token
vocabulary; values do not change GEMM or elementwise speed, and nothing is loaded), LoRA r 8 on
every attention and MLP linear as ``bench/translation.py`` trains it, a batch of 8 sequences of
``--tokens`` tokens with the loss on the last half (the German side). A step is forward,
backward and a fused AdamW step. The two variants share weights and alternate round by round;
the median of each is printed with the ratio, and the losses are compared.

    flock /tmp/lmk-bench.lock .venv/bin/python bench/lora_step.py [--rounds 5] [--tokens 60]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def build(tokens: int):
    from transformers import LlamaConfig, LlamaForCausalLM

    from lmkernel.tuning import apply_tuning

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                      num_attention_heads=9, num_key_value_heads=3, max_position_embeddings=2048,
                      tie_word_embeddings=True)
    model = apply_tuning(LlamaForCausalLM(cfg), "lora", r=8, alpha=16)
    for name, p in model.named_parameters():  # peft starts B at zero; any values do for timing
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.02)
    ids = torch.randint(0, 49152, (8, tokens))
    labels = ids.clone()
    labels[:, : tokens // 2] = -100
    return model, ids, labels


def step_fn(model, ids, labels):
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4, fused=True)
    model.train()

    def step() -> float:
        loss = model(input_ids=ids, labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return float(loss)

    return step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=2, help="timed steps per round and variant")
    ap.add_argument("--tokens", type=int, default=60, help="tokens per sequence (Multi30k prompts: ~60)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from lmkernel.training.lora import use_addmm_lora

    model, ids, labels = build(args.tokens)
    fused = copy.deepcopy(model)
    print(f"addmm LoRA layers: {use_addmm_lora(fused)}", flush=True)
    variants = {"peft": step_fn(model, ids, labels), "addmm": step_fn(fused, ids, labels)}
    first = {name: fn() for name, fn in variants.items()}  # warm-up, and the same loss from the same weights
    print(f"first-step loss: peft {first['peft']:.6f}, addmm {first['addmm']:.6f}", flush=True)
    times: dict[str, list[float]] = {name: [] for name in variants}
    for r in range(args.rounds):
        order = list(variants) if r % 2 == 0 else list(variants)[::-1]
        for name in order:
            t = time.perf_counter()
            for _ in range(args.steps):
                variants[name]()
            times[name].append((time.perf_counter() - t) / args.steps)
        print(f"round {r}: " + ", ".join(f"{n} {times[n][-1] * 1000:.0f} ms" for n in variants), flush=True)
    med = {n: statistics.median(v) for n, v in times.items()}
    print(f"\nbatch 8 x {args.tokens} tokens, LoRA r 8 on 210 linears, {args.threads} threads, "
          f"median of {args.rounds} rounds: peft {med['peft'] * 1000:.0f} ms/step, addmm {med['addmm'] * 1000:.0f} "
          f"ms/step, speed-up {med['peft'] / med['addmm']:.2f}x")


if __name__ == "__main__":
    main()
