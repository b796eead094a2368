"""Out-of-distribution detection on BANKING77: lmkernel's trust profile against max-softmax probability.

    nice -n 5 .venv/bin/python bench/trust_ood.py [--epochs 2] [--held-out 10] [--seed 0] [--workdir DIR]

Holds 10 of the 77 intents out of training (a seeded choice, printed), fine-tunes the bundled MiniLM
with lmkernel on the 67 others (a seeded 10 % of their training rows is the validation split the trust
profile is calibrated on), then scores the test texts of kept intents (in-distribution) and of
held-out intents (out-of-distribution) two ways, from the same forward pass:
  lmkernel   the detector the run stored in its trust profile (trust.json + trust.safetensors)
  msp        baseline: 1 - max softmax probability (Hendrycks & Gimpel 2017)
Prints AUROC of each (scikit-learn roc_auc_score, ood = positive), their ratio, the share of
in-distribution test texts the stored threshold flags (false-positive rate) and the share of
held-out texts it catches; writes JSON. ``--reuse`` scores an existing run in ``--workdir``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
DATA = REPO.parent / "shared" / "data" / "banking77"


def read_rows(path: Path) -> list[tuple[str, str]]:
    with open(path, encoding="utf-8", newline="") as fh:
        return [(r["text"].strip(), r["category"]) for r in csv.DictReader(fh)]


def write_csv(path: Path, rows: list[tuple[str, str]]) -> None:
    with open(path, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["text", "label"])
        w.writerows(rows)


def prepare(workdir: Path, held_out_n: int, seed: int) -> tuple[list[str], list[tuple[str, str]]]:
    """Train/validation files of the kept intents; returns the held-out intents and all test rows."""
    intents = json.loads((DATA / "categories.json").read_text(encoding="utf-8"))
    held = sorted(random.Random(seed).sample(intents, held_out_n))
    train = [r for r in read_rows(DATA / "train.csv") if r[1] not in held]
    random.Random(seed + 1).shuffle(train)
    n_val = len(train) // 10
    workdir.mkdir(parents=True, exist_ok=True)
    write_csv(workdir / "train.csv", train[n_val:])
    write_csv(workdir / "validation.csv", train[:n_val])
    return held, read_rows(DATA / "test.csv")


def train(workdir: Path, epochs: int, seed: int) -> dict:
    import lmkernel
    from lmkernel.spec import parse_spec

    spec = parse_spec({
        "seed": seed,
        "data": {"train": str(workdir / "train.csv"), "validation": str(workdir / "validation.csv"),
                 "max_length": 64},
        "model": {"name": "minilm"}, "tuning": {"method": "full"},
        "train": {"epochs": epochs, "batch_size": 32, "lr": 1e-4},
        "output": {"dir": str(workdir / "run")},
    })
    start = time.perf_counter()
    result = lmkernel.run(spec, progress=False)
    return {"validation_accuracy": result.metrics["accuracy"], "train_s": round(time.perf_counter() - start, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--held-out", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/lmk-trust-ood"))
    ap.add_argument("--reuse", action="store_true", help="score the run already in --workdir")
    ap.add_argument("--train-only", action="store_true")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "trust_ood.json")
    args = ap.parse_args()
    import torch

    held, test = prepare(args.workdir, args.held_out, args.seed)
    print(f"held-out intents (seed {args.seed}): {', '.join(held)}")
    trained = {} if args.reuse else train(args.workdir, args.epochs, args.seed)
    if args.train_only:
        print(trained)
        return
    result = score(args.workdir / "run", held, test)
    result.update(trained, held_out=held, epochs=args.epochs, seed=args.seed,
                  cpu_capability=torch.backends.cpu.get_cpu_capability())
    print(json.dumps(result, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


def score(run: Path, held: list[str], test: list[tuple[str, str]]) -> dict:
    raise NotImplementedError


if __name__ == "__main__":
    main()
