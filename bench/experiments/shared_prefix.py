"""One LoRA training step on real Multi30k batches: plain ``model(**batch)`` against the two forms of
the chat task's forward that run the prompt prefix the batch shares (system turn, start of the user
turn) once: two calls (a KV cache for the prefix) and packed (one call; the chat task's default).

SmolLM2-135M-Instruct (the cached safetensors of ``model.name: smollm2``), LoRA r 8 on every
attention/MLP linear with the addmm forward the training loop uses, the translation task with
``bench/translation.py``'s prompt (system "Translate English to German.", the sentence as the user
turn), batches of 8 from the first ``--pairs`` training pairs in the loop's length-grouped order.
A step is forward, backward and a fused AdamW step. Both variants train the same model and
optimizer, run the same ``--batches`` batches per round and alternate round by round; medians and their
ratio are printed, with the losses of the first batch (they must agree).

    flock /tmp/lmk-bench.lock .venv/bin/python bench/experiments/shared_prefix.py [--rounds 4] [--batches 4]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))
DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "multi30k"
sys.path.insert(0, str(Path(__file__).resolve().parent))


def batches(task, tokenizer, pairs: int, count: int, batch_size: int) -> list[dict]:
    from lmkernel.data.batching import train_batches
    from lmkernel.spec import DataSpec

    examples = task.read(DATA / "train", DataSpec(train=DATA / "train"), None).examples[:pairs]
    feats = task.encode(examples, tokenizer, [], 512)
    order = train_batches([len(f["input_ids"]) for f in feats], batch_size, seed=0, epoch=0)[:count]
    return [task.collate([feats[i] for i in idx], tokenizer.pad_token_id or 0) for idx in order]


def step_fn(model, opt, forward):
    def step(batch: dict) -> float:
        loss = forward(model, batch).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return float(loss.detach())

    return step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--batches", type=int, default=4, help="batches timed per round and variant")
    ap.add_argument("--pairs", type=int, default=1000, help="training pairs the batches are drawn from")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from rounds import alternate

    from lmkernel.models.resolve import load_tokenizer, resolve_model_path
    from lmkernel.tasks import get_task
    from lmkernel.tasks.shared_prefix import forward_packed, forward_with_shared_prefix, shared_prefix_length
    from lmkernel.training.lora import use_addmm_lora
    from lmkernel.tuning import apply_tuning

    path = resolve_model_path("smollm2")
    task = get_task("translation", {"source_lang": "en", "target_lang": "de",
                                    "system_prompt": "Translate English to German.", "prompt_template": "{source}"})
    tokenizer = load_tokenizer(path)
    torch.manual_seed(0)
    model = apply_tuning(task.build_model(path, []), "lora", r=8, alpha=16)
    for name, p in model.named_parameters():  # peft starts B at zero; nonzero B makes every path count
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.02)
    use_addmm_lora(model)
    work = batches(task, tokenizer, args.pairs, args.batches, args.batch_size)
    tokens = sum(int(b["attention_mask"].sum()) for b in work)
    prefixes = [shared_prefix_length(b) for b in work]
    print(f"{len(work)} batches, {tokens} tokens, widths {[b['input_ids'].shape[1] for b in work]}, "
          f"shared prefixes {prefixes}", flush=True)
    forwards = {"plain": lambda m, b: m(**b),
                "two calls": lambda m, b: forward_with_shared_prefix(m, b, shared_prefix_length(b)),
                "packed": lambda m, b: forward_packed(m, b, shared_prefix_length(b))}
    model.train()
    with torch.no_grad():  # same weights, same batch: the losses must agree
        first = {name: float(fn(model, work[0]).loss) for name, fn in forwards.items()}
    print("first-batch loss: " + ", ".join(f"{n} {v:.6f}" for n, v in first.items()), flush=True)
    # one model and optimizer for both (values do not change speed; two copies would differ in memory placement)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4, fused=True)
    variants = {name: step_fn(model, opt, fn) for name, fn in forwards.items()}
    for fn in variants.values():
        fn(work[0])  # warm-up
    med = alternate(variants, work, args.rounds)
    print(f"\nbatch {args.batch_size}, {args.threads} threads, median of {args.rounds} rounds: "
          + ", ".join(f"{n} {med[n] * 1000:.0f} ms/step ({med['plain'] / med[n]:.2f}x)" for n in variants))


if __name__ == "__main__":
    main()
