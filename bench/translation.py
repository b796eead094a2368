"""SmolLM2 on Multi30k en->de: BLEU/chrF before and after a LoRA fine-tune, against LitGPT's figures.

The peer setup (issue 3): LoRA on the first 1,000 training pairs for 1 epoch, greedy decoding of at
most 64 new tokens on the first 200 sentences of test_2016_flickr, sacreBLEU. LitGPT 0.5.13 on the
issue's machine: BLEU 0.12 -> 2.57, 2.65 training samples/s, 4.2 GB peak memory (bf16 on an
AVX512-BF16 CPU). lmkernel's side runs through its own code: the translation task's
``generation_metrics`` before training, then ``lmkernel.run`` on a spec. With ``--litgpt-python``
the script then trains LitGPT on the same pairs here, in fp32 like lmkernel
(``bench/litgpt_peer.py``: its setup, prompt and timing), and prints that ratio too.

    flock /tmp/lmk-bench.lock .venv/bin/python bench/translation.py [--train-pairs 1000] [--test 200]
        [--litgpt-python /tmp/litgpt-venv/bin/python [--litgpt-first]]

It also prints the training FLOPs per sample each side spends on these pairs (``flops_per_sample``):
their ratio is the speed-up at equal FLOP/s, and FLOPs / time shows how well each side uses the CPU.

The data slices are written to a temporary folder (never into the repo).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import torch

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "multi30k"
PEER = {"bleu_before": 0.12, "bleu_after": 2.57, "samples_per_s": 2.65, "peak_gb": 4.2}


def write_slice(src: Path, dst: Path, n: int) -> None:
    lines = src.read_text(encoding="utf-8").splitlines()[:n]
    dst.write_text("\n".join(lines) + "\n", encoding="utf-8")


def spec_text(tmp: Path, args) -> str:
    return f"""task:
  type: translation
  source_lang: en
  target_lang: de
  system_prompt: {json.dumps(args.system)}
  prompt_template: {json.dumps(args.template)}
  max_new_tokens: {args.max_new_tokens}
  eval_samples: {args.test}
data: {{train: {tmp / 'train'}, validation: {tmp / 'test'}, max_length: 256}}
model: {{name: {args.model}}}
tuning: {{method: lora, lora: {{r: {args.r}, alpha: {2 * args.r}}}}}
train: {{epochs: {args.epochs}, batch_size: {args.batch_size}, eval_batch_size: {args.eval_batch_size},
         lr: {args.lr}, precision: fp32, threads: 2, log_every: 5}}
output: {{dir: {tmp / 'run'}}}
"""


def before(tmp: Path, args) -> tuple[dict, float]:
    """Scores of the untuned model, by the same code the run uses for its final evaluation."""
    from lmkernel.models.resolve import load_tokenizer, resolve_model_path
    from lmkernel.spec import DataSpec
    from lmkernel.tasks import get_task

    path = resolve_model_path(args.model)
    task = get_task("translation", {"source_lang": "en", "target_lang": "de", "system_prompt": args.system,
                                    "prompt_template": args.template,
                                    "max_new_tokens": args.max_new_tokens, "eval_samples": args.test})
    data = task.read(tmp / "test", DataSpec(train=tmp / "test"), [])
    model = task.build_model(path, []).eval()
    t0 = time.perf_counter()
    scores = task.generation_metrics(model, load_tokenizer(path), data.examples, args.eval_batch_size)
    return scores, time.perf_counter() - t0


def flops_per_sample(tmp: Path, args) -> dict[str, float]:
    """Training GFLOP per sample each side runs on these pairs, counted from the batches themselves.

    Per row through the decoder, a forward and an input-gradient backward cost 4 FLOPs per weight of
    the 30 layers (the frozen base gets no weight gradients; LoRA's rank-8 terms are ~1 %); the output
    layer costs 4 FLOPs per weight per row it runs on. lmkernel: its length-grouped batches, the shared
    prompt prefix counted once per batch, the output layer on the learnt (German) positions only.
    LitGPT: random batches padded to their longest row, the output layer on every position (its
    chunked cross-entropy still computes every logit), the mean over 20 shuffles. Attention's own
    FLOPs (~2 % at these lengths) are left out of both.
    """
    import random

    from transformers import AutoConfig

    from lmkernel.data.batching import train_batches
    from lmkernel.models.resolve import load_tokenizer, resolve_model_path
    from lmkernel.spec import DataSpec
    from lmkernel.tasks import get_task
    from lmkernel.tasks.shared_prefix import shared_prefix_length

    path = resolve_model_path(args.model)
    cfg = AutoConfig.from_pretrained(path)
    d, ff, heads, kv = cfg.hidden_size, cfg.intermediate_size, cfg.num_attention_heads, cfg.num_key_value_heads
    body = cfg.num_hidden_layers * (2 * d * d + 2 * d * (d // heads) * kv + 3 * d * ff)
    head = cfg.vocab_size * d
    task = get_task("translation", {"source_lang": "en", "target_lang": "de", "system_prompt": args.system,
                                    "prompt_template": args.template})
    task.keep_logits_only_where_learnt = True  # as build_model sets it for a model that takes logits_to_keep
    tokenizer = load_tokenizer(path)
    feats = task.encode(task.read(tmp / "train", DataSpec(train=tmp / "train"), None).examples, tokenizer, [], 256)
    lengths = [len(f["input_ids"]) for f in feats]
    ours = 0.0
    for idx in train_batches(lengths, args.batch_size, seed=0, epoch=0):
        b = task.collate([feats[i] for i in idx], tokenizer.pad_token_id or 0)
        p, width = shared_prefix_length(b), b["input_ids"].shape[1]
        ours += 4 * body * (p + len(idx) * (width - p)) + 4 * head * int(b["logits_to_keep"].sum())
    peer, rng = 0.0, random.Random(0)
    for _ in range(20):
        order = list(range(len(lengths)))
        rng.shuffle(order)
        for s in range(0, len(order), args.batch_size):
            rows = order[s:s + args.batch_size]
            peer += 4 * (body + head) * len(rows) * max(lengths[i] for i in rows) / 20
    n = len(lengths) * args.epochs
    return {"lmkernel": ours * args.epochs / n / 1e9, "litgpt": peer * args.epochs / n / 1e9}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train-pairs", type=int, default=1000)
    ap.add_argument("--test", type=int, default=200)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--eval-batch-size", type=int, default=25)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--r", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--system", default="Translate English to German.")
    ap.add_argument("--template", default="{source}", help="user turn; the system prompt carries the instruction")
    ap.add_argument("--skip-before", action="store_true")
    ap.add_argument("--model", default="smollm2", help="another causal LM (a local folder) for a smoke test")
    ap.add_argument("--litgpt-python", type=Path, help="also train LitGPT 0.5.13 on the same pairs, here and now "
                    "(its venv's python; bench/litgpt_peer.py says how to set it up)")
    ap.add_argument("--litgpt-first", action="store_true", help="train LitGPT before lmkernel (run both orders "
                    "to cancel the drift of this VM's speed)")
    ap.add_argument("--litgpt-checkpoint", type=Path,
                    default=Path("/tmp/litgpt-work/checkpoints/HuggingFaceTB/SmolLM2-135M-Instruct"))
    args = ap.parse_args()
    torch.set_num_threads(2)

    import lmkernel

    with tempfile.TemporaryDirectory(prefix="lmk-mt-") as name:
        tmp = Path(name)
        for lang in ("en", "de"):
            write_slice(DATA / f"train.{lang}", tmp / f"train.{lang}", args.train_pairs)
            write_slice(DATA / f"test_2016_flickr.{lang}", tmp / f"test.{lang}", args.test)
        (tmp / "spec.yaml").write_text(spec_text(tmp, args), encoding="utf-8")
        pre, pre_s = ({}, 0.0) if args.skip_before else before(tmp, args)
        print(f"before tuning: {json.dumps({k: v for k, v in pre.items() if k != 'samples'})} in {pre_s:.0f} s",
              flush=True)
        here = None

        def peer() -> dict:  # the peer on this machine: same pairs, batch, LoRA and lr
            from litgpt_peer import read_pairs, run_litgpt

            out = run_litgpt(args.litgpt_python, args.litgpt_checkpoint.resolve(),
                             read_pairs("train", args.train_pairs), tmp / "litgpt", args.epochs,
                             args.batch_size, args.r, args.lr, system=args.system)
            print(f"LitGPT here: {out['samples_per_s']:.2f} samples/s, peak {out['peak_gb']:.2f} GB", flush=True)
            return out

        if args.litgpt_python and args.litgpt_first:
            here = peer()
        t0 = time.perf_counter()
        result = lmkernel.run(tmp / "spec.yaml", progress=False)
        wall = time.perf_counter() - t0
        post = result.metrics["validation"]
        training = result.metrics["training"]
        peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # own peak; LitGPT runs as a child
        if args.litgpt_python and not args.litgpt_first:
            here = peer()
        flops = flops_per_sample(tmp, args)
    sps = training["train samples/s"]
    rows = [
        ("BLEU before", pre.get("bleu"), PEER["bleu_before"]),
        ("BLEU after", post["bleu"], PEER["bleu_after"]),
        ("chrF before", pre.get("chrf"), None),
        ("chrF after", post["chrf"], None),
        ("training samples/s", sps, PEER["samples_per_s"]),
        ("train time (s)", training["train time (s)"], None),
        (f"outputs at the {args.max_new_tokens}-token limit, before", pre.get("hit_token_limit"), None),
        (f"outputs at the {args.max_new_tokens}-token limit, after", post["hit_token_limit"], None),
        (f"generation before, {args.test} sentences (s)", round(pre_s, 1), None),
        ("run wall time incl. evals (s)", round(wall, 1), None),
        ("peak RSS, whole process (GB)", round(peak_gb, 2), PEER["peak_gb"]),
    ]
    print(f"\n{args.train_pairs} pairs x {args.epochs} epoch, LoRA r={args.r}, batch {args.batch_size}, "
          f"lr {args.lr}, fp32, {args.test} test sentences, greedy <= {args.max_new_tokens} tokens")
    mine = {"training samples/s": round(here["samples_per_s"], 2), "train time (s)": round(here["train_s"], 1),
            "peak RSS, whole process (GB)": round(here["peak_gb"], 2)} if here else {}
    print(f"{'':42} {'lmkernel':>10} {'LitGPT (issue)':>15} {'LitGPT here, fp32':>18}")
    for label, ours, peer in rows:
        print(f"{label:42} {ours if ours is not None else '-':>10} {peer if peer is not None else '-':>15} "
              f"{mine.get(label, '-'):>18}")
    print(f"training samples/s ratio vs LitGPT's issue figure (bf16, another CPU): {sps / PEER['samples_per_s']:.2f}x")
    if here:
        print(f"training samples/s ratio vs LitGPT on this machine in this run (fp32 both, "
              f"{'LitGPT' if args.litgpt_first else 'lmkernel'} first): {sps / here['samples_per_s']:.2f}x")
    print(f"training GFLOP per sample: lmkernel {flops['lmkernel']:.1f}, LitGPT {flops['litgpt']:.1f} "
          f"(ratio {flops['litgpt'] / flops['lmkernel']:.2f}: the speed-up at equal FLOP/s); achieved "
          f"lmkernel {flops['lmkernel'] * sps:.0f} GFLOP/s"
          + (f", LitGPT {flops['litgpt'] * here['samples_per_s']:.0f} GFLOP/s" if here else ""))
    for s in post["samples"][:3]:
        print(json.dumps(s, ensure_ascii=False))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
