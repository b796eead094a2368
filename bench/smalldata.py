"""Small-data defaults: lmkernel with nothing set in train: against a plain transformers Trainer script.

    nice -n 5 .venv/bin/python bench/smalldata.py --intents 30 --per-intent 20 --seeds 1,2,3
    nice -n 5 .venv/bin/python bench/smalldata.py --intents 3 --per-intent 20 --seeds 1,2,3
    nice -n 5 .venv/bin/python bench/smalldata.py --intents 77 --per-intent 50 --seeds 1

Data: BANKING77 (/work/shared/data/banking77). The training rows are ``--per-intent`` rows of each of
``--intents`` intents (the first intents of categories.json, rows drawn by --data-seed from train.csv);
every system is scored on the test.csv rows of those intents (40 per intent). Nobody gets a validation
split, so each system is scored on its final weights and trains on exactly the same rows.

Systems (same backbone, minilm; max length 128):
  lmk        lmkernel, no train.* key set: the small-data rule picks batch size, epochs and learning rate
  lmk-fixed  lmkernel with train.auto: false: the fixed defaults it had before (batch 32, 3 epochs, lr 1e-4)
  hf         transformers Trainer with its default arguments (batch 8, lr 5e-5, 3 epochs, no warmup/decay)
  hf-1e-4    the same with learning_rate 1e-4, the hand-tuned plain script
Prints the accuracy of each system per seed, the mean, the lmk / best-plain ratio and the CPU capability.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
DATA = Path("/work/shared/data/banking77")
SYSTEMS = ("lmk", "lmk-fixed", "hf", "hf-1e-4")


def read_csv(path: Path) -> list[tuple[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return [(r["text"], r["category"]) for r in csv.DictReader(fh)]


def subset(intents: int, per_intent: int, data_seed: int) -> tuple[list, list, list[str]]:
    """(train rows, test rows, intent names): per_intent rows of each of the first ``intents`` intents."""
    names = json.loads((DATA / "categories.json").read_text(encoding="utf-8"))[:intents]
    rng = random.Random(data_seed)
    pool = read_csv(DATA / "train.csv")
    train = []
    for name in names:
        train += rng.sample([r for r in pool if r[1] == name], per_intent)
    rng.shuffle(train)
    test = [r for r in read_csv(DATA / "test.csv") if r[1] in names]
    return train, test, sorted(names)


def write(path: Path, rows) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["text", "label"])
        w.writerows(rows)
    return path


def run_lmkernel(train_file: Path, test_file: Path, work: Path, seed: int, auto: bool) -> dict:
    import lmkernel
    from lmkernel.spec import parse_spec

    train = {} if auto else {"auto": False}
    spec = parse_spec({"seed": seed, "data": {"train": str(train_file), "test": str(test_file)},
                       "model": {"name": "minilm"}, "train": train,
                       "output": {"dir": str(work / f"lmk-{auto}-{seed}")}})
    m = lmkernel.run(spec, progress=False).metrics
    return {"accuracy": m["accuracy"], "steps": m["training"]["optimizer steps"],
            "precision": m["training"]["precision"]}


def run_trainer(train_rows, test_rows, labels: list[str], work: Path, seed: int, lr: float | None) -> dict:
    from classification import plain_trainer

    r = plain_trainer(train_rows, test_rows, labels, work / f"hf-{lr}-{seed}", seed,
                      **({"learning_rate": lr} if lr else {}))
    return {"accuracy": r["accuracy"], "steps": r["train"].global_step, "precision": "fp32"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--intents", type=int, default=30)
    ap.add_argument("--per-intent", type=int, default=20)
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--data-seed", type=int, default=0)
    ap.add_argument("--only", default=",".join(SYSTEMS))
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads of every system (default: all)")
    ap.add_argument("--out", type=Path, default=None, help="also write the results as JSON here")
    args = ap.parse_args()

    import torch
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    if args.threads:
        torch.set_num_threads(args.threads)
    train, test, labels = subset(args.intents, args.per_intent, args.data_seed)
    seeds = [int(s) for s in args.seeds.split(",")]
    systems = args.only.split(",")
    results: dict[str, list[dict]] = {s: [] for s in systems}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        train_file, test_file = write(work / "train.csv", train), write(work / "test.csv", test)
        for seed in seeds:
            for name in systems:
                t0 = time.perf_counter()
                if name.startswith("lmk"):
                    row = run_lmkernel(train_file, test_file, work, seed, auto=name == "lmk")
                else:
                    row = run_trainer(train, test, labels, work, seed, 1e-4 if name == "hf-1e-4" else None)
                row["wall_s"] = round(time.perf_counter() - t0, 1)
                results[name].append(row)
                print(f"seed {seed} {name}: {json.dumps(row)}", flush=True)

    print(f"\nBANKING77 {args.intents} intents x {args.per_intent} rows = {len(train)} training rows, "
          f"{len(test)} test rows; seeds {args.seeds}; CPU capability {torch.backends.cpu.get_cpu_capability()}")
    print("| system | steps | accuracy per seed | mean |\n|---|---|---|---|")
    means = {}
    for name, rows in results.items():
        means[name] = statistics.mean(r["accuracy"] for r in rows)
        accs = ", ".join(f"{r['accuracy']:.3f}" for r in rows)
        print(f"| {name} | {rows[0]['steps']} | {accs} | {means[name]:.3f} |")
    plain = [means[s] for s in ("hf", "hf-1e-4") if s in means]
    if "lmk" in means and plain:
        print(f"\nlmk / best plain script: {means['lmk']:.3f} / {max(plain):.3f} = {means['lmk'] / max(plain):.3f}")
    if args.out:
        args.out.write_text(json.dumps({"args": vars(args) | {"out": str(args.out)}, "results": results}, indent=1))


if __name__ == "__main__":
    main()
