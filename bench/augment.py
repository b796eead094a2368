"""Augmentation (data.augment's EDA) against none: SST-2 with few training rows, several seeds, one run.

    nice -n 5 .venv/bin/python bench/augment.py [--sizes 100 500] [--seeds 5] [--n-aug 4] [--dev-rows 872]
                                                [--epochs 8 | --steps 60] [--threads 1]

Per size N and seed s: N rows drawn from SST-2 train with seed s; MiniLM fine-tuned (full) twice from the
same start, on the N rows as they are (baseline) and on them plus EDA's new rows (lmkernel's
augment(): synonym/insert/swap/delete, synonyms from MiniLM's input embeddings, alpha from Wei & Zou's
table). Both get the same number of optimizer steps (``--epochs`` passes over the N plain rows), so the
augmented model sees more varied rows, not more updates. Dev accuracy on the first ``--dev-rows`` rows of
SST-2 dev; no checkpoint is chosen on dev. Prints mean ± std (sample std over seeds) per size and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "bench"))
SST2 = REPO.parent / "shared" / "data" / "sst2"

from classification import read_tsv  # noqa: E402


def _examples(rows):
    from lmkernel.tasks.base import Example

    return [Example(text, str(label), "sst2", i) for i, (text, label) in enumerate(rows)]


def fit_and_score(train, dev, steps: int, args, seed: int, workdir: Path) -> float:
    """Fine-tune MiniLM on ``train`` for ``steps`` optimizer steps; dev accuracy."""
    from accelerate.utils import set_seed

    from lmkernel.device import make_accelerator
    from lmkernel.models.resolve import load_tokenizer, resolve_model_path
    from lmkernel.spec import TrainSpec
    from lmkernel.tasks import get_task
    from lmkernel.training import evaluate
    from lmkernel.training import train as train_model

    task, labels = get_task("classification"), ["0", "1"]
    path = resolve_model_path("minilm")
    tokenizer = load_tokenizer(path)
    set_seed(seed)
    model = task.build_model(path, labels)
    feats = task.encode(train, tokenizer, labels, 64)
    opts = TrainSpec(max_steps=steps, batch_size=args.batch_size, lr=args.lr, precision="fp32", log_every=1000)
    accelerator = make_accelerator("fp32")
    train_model(model, task, feats, None, labels, opts, seed, workdir, accelerator, tokenizer.pad_token_id,
                progress=False)
    metrics = evaluate(model, task, task.encode(dev, tokenizer, labels, 64), labels, 128, accelerator,
                       tokenizer.pad_token_id, progress=False)
    return metrics["accuracy"]


def one_seed(pool, dev, size: int, seed: int, args) -> dict:
    from lmkernel.augment.guard import augment
    from lmkernel.augment.options import AugmentOptions

    train = _examples(random.Random(seed).sample(pool, size))
    added, made = augment(train, AugmentOptions(n_aug=args.n_aug), "minilm", seed)
    steps = args.steps or math.ceil(size * args.epochs / args.batch_size)
    out = {"size": size, "seed": seed, "steps": steps, "added": made["added"], "alpha": made["alpha"]}
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        out["none"] = fit_and_score(train, dev, steps, args, seed, Path(tmp) / "none")
        out["augmented"] = fit_and_score(train + added, dev, steps, args, seed, Path(tmp) / "aug")
        out["seconds"] = round(time.perf_counter() - t, 1)
    print(f"N={size} seed={seed}: none {out['none']:.4f}  augmented {out['augmented']:.4f}  "
          f"(+{len(added)} rows, {out['seconds']} s)", flush=True)
    return out


def summary(results: list[dict], sizes: list[int]) -> list[dict]:
    rows = []
    for size in sizes:
        got = [r for r in results if r["size"] == size]
        row = {"size": size, "seeds": len(got)}
        for key in ("none", "augmented"):
            vals = [100 * r[key] for r in got]
            row[key] = (statistics.mean(vals), statistics.stdev(vals) if len(vals) > 1 else 0.0)
        diffs = [100 * (r["augmented"] - r["none"]) for r in got]
        row["gain"] = (statistics.mean(diffs), statistics.stdev(diffs) if len(diffs) > 1 else 0.0)
        row["wins"] = sum(d > 0 for d in diffs)
        rows.append(row)
    return rows


def main() -> None:
    import torch

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[100, 500])
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--n-aug", type=int, default=4)
    p.add_argument("--epochs", type=int, default=8, help="passes over the plain rows (sets the step count)")
    p.add_argument("--steps", type=int, default=None, help="optimizer steps for every size (overrides --epochs)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--dev-rows", type=int, default=872)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "augment.json")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    pool = read_tsv(SST2 / "train.tsv")
    dev = _examples(read_tsv(SST2 / "dev.tsv", args.dev_rows))
    start = time.perf_counter()
    results = []
    for size in args.sizes:
        for seed in range(1, args.seeds + 1):
            results.append(one_seed(pool, dev, size, seed, args))
            _write(args, results, summary(results, sorted({r["size"] for r in results})))  # kept if cut short
    table = summary(results, args.sizes)
    budget = f"{args.steps} steps" if args.steps else f"{args.epochs} passes over the plain rows"
    print(f"\nSST-2 dev ({len(dev)} rows), MiniLM full fine-tuning, n_aug {args.n_aug}, equal steps "
          f"({budget}, batch {args.batch_size}, lr {args.lr}); "
          f"{platform.machine()}, torch {torch.__version__}, CPU capability "
          f"{torch.backends.cpu.get_cpu_capability()}, wall {time.perf_counter() - start:.0f} s")
    print("| train rows | seeds | none (mean ± std) | augmented (mean ± std) | gain (mean ± std) | seeds won |")
    print("|---|---|---|---|---|---|")
    for r in table:
        print(f"| {r['size']} | {r['seeds']} | {r['none'][0]:.1f} ± {r['none'][1]:.1f} | "
              f"{r['augmented'][0]:.1f} ± {r['augmented'][1]:.1f} | {r['gain'][0]:+.1f} ± {r['gain'][1]:.1f} | "
              f"{r['wins']}/{r['seeds']} |")
    _write(args, results, table)


def _write(args, results: list[dict], table: list[dict]) -> None:
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "runs": results,
                                    "summary": table}, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
