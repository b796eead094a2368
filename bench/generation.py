"""Tokens/s of lmkernel generation against plain transformers ``generate`` on the same prompts.

SmolLM2-135M-Instruct (fp32, 2 threads), greedy, at most 64 new tokens, chat-templated prompts;
batch 1 (each prompt alone) and batch 8 (all prompts, left-padded). Both sides produce the same
tokens (checked), so tokens/s compare the same work; variants alternate round by round.

    flock /tmp/lmk-bench.lock .venv/bin/python bench/generation.py [--rounds 4]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

PROMPTS = [
    "Write a short poem about the sea.", "Explain what a CPU cache is.", "Give three tips for learning a language.",
    "Describe a sunset in the mountains.", "What is the difference between a list and a tuple in Python?",
    "Tell me a short story about a robot who learns to paint.", "Why is the sky blue?",
    "List five fruits and their colours.",
]
MAX_NEW = 64


def plain(model, tok, prompts: list[str]) -> tuple[int, list[list[int]]]:
    """What a user of transformers writes: template, left-pad, generate, count tokens to the eos."""
    texts = [tok.apply_chat_template([{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True)
             for p in prompts]
    tok.padding_side = "left"
    enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    with torch.inference_mode():
        out = model.generate(**enc, max_new_tokens=MAX_NEW, do_sample=False, pad_token_id=tok.pad_token_id,
                             eos_token_id=tok.eos_token_id)
    rows = []
    for r in out[:, enc["input_ids"].shape[1]:].tolist():
        row = []
        for t in r:
            row.append(t)
            if t == tok.eos_token_id:
                break
        rows.append(row)
    return sum(len(r) for r in rows), rows


def ours(lm, prompts: list[str]) -> tuple[int, list[list[int]]]:
    outs = lm.generate(prompts, max_new_tokens=MAX_NEW, batch_size=len(prompts))
    return sum(o["tokens"] for o in outs), [o["token_ids"] for o in outs]


def timed(fn, *args) -> tuple[float, int, list]:
    t0 = time.perf_counter()
    n, rows = fn(*args)
    return n / (time.perf_counter() - t0), n, rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--bs1-prompts", type=int, default=3)
    ap.add_argument("--model", default="smollm2", help="another causal LM (a local folder) for a smoke test")
    args = ap.parse_args()
    torch.set_num_threads(2)

    from transformers import AutoModelForCausalLM

    from lmkernel.artifact import load_generator
    from lmkernel.models.resolve import load_pretrained, resolve_model_path

    lm = load_generator(args.model)
    # the plain side gets its own copy: lmkernel switches its model's Linears (models/layout.py)
    model = load_pretrained(AutoModelForCausalLM, resolve_model_path(args.model), dtype=torch.float32).eval()
    tok = lm.tokenizer
    plain(model, tok, PROMPTS[:1])  # warm-up
    rates: dict[str, list[float]] = {k: [] for k in ("plain bs1", "lmkernel bs1", "plain bs8", "lmkernel bs8")}
    same = True
    for r in range(args.rounds):
        for label, fn, arg in (("plain", plain, (model, tok)), ("lmkernel", ours, (lm,)))[::1 if r % 2 == 0 else -1]:
            bs1_tokens, bs1_time, bs1_rows = 0, 0.0, []
            for p in PROMPTS[:args.bs1_prompts]:
                t0 = time.perf_counter()
                n, rows = fn(*arg, [p])
                bs1_time += time.perf_counter() - t0
                bs1_tokens += n
                bs1_rows += rows
            rates[f"{label} bs1"].append(bs1_tokens / bs1_time)
            rate, n, rows8 = timed(fn, *arg, PROMPTS)
            rates[f"{label} bs8"].append(rate)
            if label == "plain":
                ref = (bs1_rows, rows8)
            else:
                mine = (bs1_rows, rows8)
        same = same and ref == mine
    med = {k: statistics.median(v) for k, v in rates.items()}
    print(f"SmolLM2-135M fp32, greedy, <= {MAX_NEW} new tokens, {args.rounds} rounds (median tok/s)")
    for bs in ("bs1", "bs8"):
        print(f"{bs}: plain transformers {med['plain ' + bs]:.1f} tok/s, lmkernel {med['lmkernel ' + bs]:.1f} tok/s, "
              f"ratio {med['lmkernel ' + bs] / med['plain ' + bs]:.3f}")
    print(f"identical tokens: {same}; all rounds: " + ", ".join(f"{k}={[round(x, 1) for x in v]}"
                                                              for k, v in rates.items()))


if __name__ == "__main__":
    main()
