"""Pretraining on WikiText-2: lmkernel against a plain PyTorch loop, and the value of pretraining.

    flock /tmp/lmk-bench.lock .venv/bin/python bench/pretrain.py [--decoder-min 8] [--encoder-min 4]

(a) decoder: a byte-level BPE tokenizer (8k) and a Llama decoder trained from scratch on
    wiki.train.tokens by ``lmkernel pretrain`` (streamed corpus, blocks of 128, batch 16) for a step
    count sized to ``--decoder-min`` minutes by a short probe; validation perplexity on wiki.valid.tokens.
    Throughput: ``--rounds`` rounds alternate a minimal plain-PyTorch loop (same model config and
    weights, the same blocks pre-made as one tensor, same batch size, fused AdamW with the same decay
    groups, grad clipping; no data reading, scheduler, checkpoints or eval) and an lmkernel segment of
    the same length (continued pretraining of the trained model, no validation), ``--round-s`` seconds
    each; alternating makes load drift on the shared CPU hit both alike. The ratio is lmkernel
    tokens/s (its training time counts reading, tokenizing, packing, collation, forward, backward,
    step; not eval or checkpoints) over the plain loop's, averaged over the rounds.
(b) encoder: a WordPiece tokenizer and a BERT encoder pretrained with MLM on wiki.train.tokens for
    ``--encoder-min`` minutes (or ``--encoder-steps``), then fine-tuned with ``lmkernel run`` on the
    first ``--sst2-rows`` SST-2 training rows (one or more subset sizes; dev: the full SST-2 dev set)
    against the same architecture and tokenizer from random initialisation, for each lr of
    ``--ft-lrs`` (same epochs and batch); each side is reported at its best lr, with the grid.

Perplexities are per BPE/WordPiece token of our 8k vocabularies, not per WikiText word, so they are
not comparable with word-level tables. Writes bench/results/pretrain.json (or ``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
WIKI = REPO.parent / "shared" / "data" / "wikitext2"
SST2 = REPO.parent / "shared" / "data" / "sst2"
BLOCK, BATCH = 128, 16


def decoder_spec(work: Path, steps: int, args) -> dict:
    return {"task": {"type": "pretrain", "objective": "clm"},
            "data": {"train": str(WIKI / "wiki.train.tokens"), "validation": str(WIKI / "wiki.valid.tokens"),
                     "max_length": BLOCK},
            "model": {"arch": "decoder", "preset": args.decoder_preset},
            "tokenizer": {"vocab_size": 8000},
            "train": {"max_steps": steps, "batch_size": BATCH, "lr": 2e-3, "eval_batch_size": 64,
                      "log_every": 50, "warmup_ratio": 0.03},
            "output": {"dir": str(work / "wiki-clm")}}


def plain_loop(model, blocks, seconds: float, lr: float) -> dict:
    """The baseline: as little as a PyTorch training loop can be, on pre-made blocks."""
    import torch

    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "norm" not in n.lower()]
    rest = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "norm" not in n.lower())]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": rest, "weight_decay": 0.0}],
                            lr=lr, fused=True)
    model.train()
    steps, start = 0, time.perf_counter()
    gen = torch.Generator().manual_seed(0)
    while time.perf_counter() - start < seconds:
        idx = torch.randint(len(blocks), (BATCH,), generator=gen)
        ids = blocks[idx]
        loss = model(input_ids=ids, attention_mask=torch.ones_like(ids), labels=ids).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        steps += 1
    elapsed = time.perf_counter() - start
    return {"steps": steps, "seconds": elapsed, "tokens_per_s": steps * BATCH * BLOCK / elapsed,
            "last_loss": float(loss)}


def blocks_tensor(tokenizer, arch: str):
    import torch

    from lmkernel.pretrain.corpus import BlockStream, CorpusStats, Packing, iter_texts
    from lmkernel.pretrain.tokenizer import TextEncoder, separator_ids

    sep, pre, suf = separator_ids(tokenizer, arch)
    files = [WIKI / "wiki.train.tokens"]
    stream = BlockStream(lambda st: iter_texts(files, "text", "error", st), TextEncoder(tokenizer, False),
                         Packing(BLOCK, sep, pre, suf), BATCH, 0)
    return torch.tensor([b["input_ids"] for b in stream.blocks(CorpusStats())], dtype=torch.long)


def bench_decoder(work: Path, args) -> dict:
    """(a): a from-scratch run for the budget, then interleaved throughput rounds against the plain loop."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from lmkernel.pretrain import pretrain
    from lmkernel.spec import parse_spec

    probe = parse_spec(decoder_spec(work, 1, args) | {"output": {"dir": str(work / "probe")}})
    probe.data.validation = None
    t0 = time.perf_counter()
    pretrain(probe, progress=False)  # trains the tokenizer (timed) and measures one step
    tok_s = time.perf_counter() - t0
    init_dir = work / "probe" / "model"
    tok = AutoTokenizer.from_pretrained(str(init_dir))
    blocks = blocks_tensor(tok, "decoder")
    plain_model = AutoModelForCausalLM.from_pretrained(str(init_dir))
    warm = plain_loop(plain_model, blocks, 20, 2e-3)
    rate = warm["steps"] / warm["seconds"]
    steps = max(20, int(args.decoder_min * 60 * rate))
    print(f"[a] tokenizer + probe {tok_s:.0f}s; {len(blocks)} train blocks of {BLOCK}; {rate:.2f} steps/s; "
          f"main run {steps} steps", flush=True)
    start = time.perf_counter()
    result = pretrain(parse_spec(decoder_spec(work, steps, args)), progress=False)
    m = result.metrics
    print(f"[a] lmkernel from scratch: {steps} steps in {time.perf_counter() - start:.0f}s, "
          f"{m['training']['train tokens/s']:.0f} tokens/s, val ppl {m['perplexity']:.1f}", flush=True)
    # throughput: alternate plain and lmkernel segments of equal length, so load drift hits both alike
    seg_steps = max(5, int(args.round_s * rate))
    rounds = []
    for r in range(args.rounds):
        plain = plain_loop(plain_model, blocks, args.round_s, 2e-3)
        spec = decoder_spec(work, seg_steps, args)
        spec["model"] = {"name": str(result.run_dir / "model")}
        spec["data"].pop("validation")
        spec["output"] = {"dir": str(work / f"round-{r}")}
        seg = pretrain(parse_spec(spec), progress=False).metrics["training"]
        rounds.append({"plain_tokens_per_s": round(plain["tokens_per_s"], 1),
                       "lmkernel_tokens_per_s": seg["train tokens/s"], "lmkernel_steps": seg_steps})
        print(f"[a] round {r}: plain {plain['tokens_per_s']:.0f} tokens/s, lmkernel {seg['train tokens/s']:.0f}",
              flush=True)
    plain_tps = sum(x["plain_tokens_per_s"] for x in rounds) / len(rounds)
    lmk_tps = sum(x["lmkernel_tokens_per_s"] for x in rounds) / len(rounds)
    return {"preset": args.decoder_preset, "params": m["total_params"], "steps": steps, "block": BLOCK,
            "batch": BATCH, "train_blocks": len(blocks), "tokens_seen": steps * BATCH * BLOCK,
            "train_s": m["training"]["train time (s)"], "wall_s_incl_eval": m["training"]["wall time incl. eval (s)"],
            "val_loss": m["loss"], "val_perplexity": m["perplexity"],
            "main_run_tokens_per_s": m["training"]["train tokens/s"], "rounds": rounds,
            "lmkernel_tokens_per_s": lmk_tps, "plain_tokens_per_s": plain_tps, "ratio": lmk_tps / plain_tps,
            "steps_per_s_probe": rate}


def finetune(model_dir: Path, work: Path, name: str, rows: int, lr: float, args) -> float:
    from lmkernel.pipeline import run
    from lmkernel.spec import parse_spec

    train = work / f"sst2-train-{rows}.tsv"
    if not train.exists():
        lines = (SST2 / "train.tsv").read_text(encoding="utf-8").splitlines()
        train.write_text("\n".join(lines[:rows + 1]) + "\n", encoding="utf-8")
    spec = parse_spec({"data": {"train": str(train), "validation": str(SST2 / "dev.tsv"), "text_column": "sentence",
                                "max_length": 64},
                       "model": {"name": str(model_dir)},
                       "train": {"epochs": args.ft_epochs, "batch_size": 32, "lr": lr, "eval_batch_size": 128},
                       "output": {"dir": str(work / f"{name}-{rows}-{lr:g}")}})
    return run(spec, progress=False).metrics["accuracy"]


def bench_encoder(work: Path, args) -> dict:
    import torch

    from lmkernel.pretrain import pretrain
    from lmkernel.spec import parse_spec

    # steps for --encoder-min minutes, from a short timed probe of the same spec
    spec = {"task": {"type": "pretrain", "objective": "mlm", "mask_prob": args.mask_prob},
            "data": {"train": str(WIKI / "wiki.train.tokens"), "validation": str(WIKI / "wiki.valid.tokens"),
                     "max_length": BLOCK},
            "model": {"arch": "encoder", "preset": args.encoder_preset},
            "tokenizer": {"vocab_size": 8000, "lowercase": True},
            "train": {"max_steps": args.encoder_steps, "batch_size": BATCH, "lr": 1e-3, "eval_batch_size": 64,
                      "log_every": 50, "warmup_ratio": 0.03, "eval_every": max(1, args.encoder_steps // 4)},
            "output": {"dir": str(work / "wiki-mlm")}}
    result = pretrain(parse_spec(spec), progress=False)
    m = result.metrics
    print(f"[b] MLM pretrain: {args.encoder_steps} steps in {m['training']['train time (s)']}s, "
          f"val ppl {m['perplexity']:.1f}", flush=True)
    pre_dir = result.run_dir / "model"
    # the same architecture and tokenizer, randomly initialised
    from transformers import AutoConfig, AutoTokenizer, BertForMaskedLM

    rand_dir = work / "random-encoder"
    torch.manual_seed(0)
    BertForMaskedLM(AutoConfig.from_pretrained(pre_dir)).save_pretrained(rand_dir)
    AutoTokenizer.from_pretrained(pre_dir).save_pretrained(rand_dir)
    # Each side gets its best fine-tuning lr of the grid: a fixed lr favours one of them (a
    # random init wants a higher lr than pretrained weights), and the dev set picks for both alike.
    subsets = []
    for rows in args.sst2_rows:
        grid = []
        for lr in args.ft_lrs:
            acc_pre = finetune(pre_dir, work, "ft-pretrained", rows, lr, args)
            acc_rand = finetune(rand_dir, work, "ft-random", rows, lr, args)
            print(f"[b] {rows} SST-2 rows, lr {lr:g}: from MLM pretraining {acc_pre:.4f}, "
                  f"from random init {acc_rand:.4f}", flush=True)
            grid.append({"lr": lr, "accuracy_pretrained": acc_pre, "accuracy_random_init": acc_rand})
        best_pre = max(grid, key=lambda g: g["accuracy_pretrained"])
        best_rand = max(grid, key=lambda g: g["accuracy_random_init"])
        subsets.append({"sst2_rows": rows, "accuracy_pretrained": best_pre["accuracy_pretrained"],
                        "lr_pretrained": best_pre["lr"], "accuracy_random_init": best_rand["accuracy_random_init"],
                        "lr_random_init": best_rand["lr"], "grid": grid})
    return {"preset": args.encoder_preset, "params": m["total_params"], "mlm_steps": args.encoder_steps,
            "mlm_train_s": m["training"]["train time (s)"], "mlm_val_perplexity": m["perplexity"],
            "mask_prob": args.mask_prob, "ft_epochs": args.ft_epochs, "subsets": subsets}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--decoder-min", type=float, default=6.0, help="lmkernel decoder training budget (minutes)")
    ap.add_argument("--decoder-preset", default="tiny")
    ap.add_argument("--round-s", type=float, default=30.0, help="seconds per throughput segment")
    ap.add_argument("--rounds", type=int, default=2, help="plain/lmkernel throughput rounds")
    ap.add_argument("--encoder-preset", default="tiny")
    ap.add_argument("--encoder-min", type=float, default=4.0, help="MLM pretraining budget (minutes)")
    ap.add_argument("--encoder-steps", type=int, default=None,
                    help="MLM steps (default: --encoder-min minutes at the decoder probe's rate, 1 step/s without (a))")
    ap.add_argument("--sst2-rows", type=lambda v: [int(x) for x in v.split(",")], default=[5000],
                    help="comma-separated SST-2 subset sizes to fine-tune on, e.g. 1000,5000")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "pretrain.json")
    ap.add_argument("--ft-epochs", type=int, default=3)
    ap.add_argument("--ft-lrs", type=lambda v: [float(x) for x in v.split(",")], default=[1e-4, 3e-4, 1e-3],
                    help="fine-tuning learning rates; each side is reported at its best one")
    ap.add_argument("--mask-prob", type=float, default=0.3,
                    help="MLM masking rate (0.3: more predictions per step than BERT's 0.15, for a short budget)")
    ap.add_argument("--only", default="a,b")
    args = ap.parse_args()
    import torch

    out = {"machine": f"{platform.machine()} {platform.processor()}", "threads": torch.get_num_threads(),
           "args": vars(args)}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if "a" in args.only:
            out["decoder"] = bench_decoder(work, args)
        if "b" in args.only:
            rate = out["decoder"]["steps_per_s_probe"] if "decoder" in out else 1.0
            args.encoder_steps = args.encoder_steps or max(20, int(args.encoder_min * 60 * rate))
            out["encoder"] = bench_encoder(work, args)
    print(json.dumps(out, indent=2, default=str))
    dest = args.out
    dest.parent.mkdir(exist_ok=True)
    dest.write_text(json.dumps(out, indent=2, default=str) + "\n")
    if "decoder" in out:
        d = out["decoder"]
        print(f"\n(a) decoder {d['preset']} ({d['params']:,} params), {d['steps']} steps: val perplexity "
              f"{d['val_perplexity']:.1f}; interleaved rounds: lmkernel {d['lmkernel_tokens_per_s']:.0f} tokens/s vs "
              f"plain {d['plain_tokens_per_s']:.0f} -> ratio {d['ratio']:.3f}")
    if "encoder" in out:
        e = out["encoder"]
        for sub in e["subsets"]:
            print(f"(b) {sub['sst2_rows']} SST-2 rows, dev accuracy at each side's best lr: MLM-pretrained "
                  f"{sub['accuracy_pretrained']:.4f} (lr {sub['lr_pretrained']:g}) vs random init "
                  f"{sub['accuracy_random_init']:.4f} (lr {sub['lr_random_init']:g})")


if __name__ == "__main__":
    main()
