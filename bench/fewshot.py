"""Few-shot classification: lmkernel's fewshot method against plain fine-tuning, on the same examples, in one run.

    nice -n 5 .venv/bin/python bench/fewshot.py [--datasets cr,sst2,banking77] [--seeds 0,1,2] [--shots 8]
        [--test-per-class 0] [--only fewshot,prototype,plain]

For each data set and seed, ``--shots`` training examples per class are drawn (seeded) from the training
pool, and every method trains on exactly those rows and is scored on the same fixed test rows:
  fewshot     lmkernel, tuning.method: fewshot (contrastive pairs + logistic head), every option default
  prototype   lmkernel, tuning.method: fewshot, head: prototype (nearest class mean, no training)
  plain       plain fine-tuning with transformers + torch (no lmkernel): AutoModelForSequenceClassification,
              AdamW lr 5e-5 (Trainer's default), batch 8, 10 epochs, linear decay
All on MiniLM (all-MiniLM-L6-v2, the model of SetFit's published figure). Data:
  cr         SentEval CR; no official split, so a fixed 20 % (seed 0) is the test set, the rest the pool
  sst2       GLUE SST-2: pool = train.tsv rows of at least 6 words (sentence-like, not phrase fragments),
             test = dev.tsv (872)
  banking77  pool = train.csv, test = test.csv (3,080; --test-per-class N keeps the first N per intent)
Prints accuracy mean ± std over the seeds and seconds per seed (training + test evaluation, the lmkernel
runs including their report) as wall time and as process CPU time / threads (what the wall time would be
on otherwise idle cores: on a machine shared with other jobs the wall time measures the neighbours), the
ratios, and the CPU capability; writes bench/results/fewshot.json.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
DATA = REPO.parent / "shared" / "data"
SETFIT_CR_8SHOT = 71.6  # SetFit with all-MiniLM-L6-v2, mean of 10 seeds at 8 per class (the target)


def load_cr() -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    rows = []
    for name, label in (("custrev.pos", "positive"), ("custrev.neg", "negative")):
        for line in (DATA / "senteval_cr" / name).read_text(encoding="utf-8").splitlines():
            if line.strip():
                rows.append((line.strip(), label))
    random.Random(0).shuffle(rows)
    cut = len(rows) // 5
    return rows[cut:], rows[:cut]


def _tsv(path: Path) -> list[tuple[str, str]]:
    with open(path, encoding="utf-8") as fh:
        reader = csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)
        next(reader)
        return [(text.strip(), {"0": "negative", "1": "positive"}[label]) for text, label in reader]


def load_sst2() -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    pool = [r for r in _tsv(DATA / "sst2" / "train.tsv") if len(r[0].split()) >= 6]
    return pool, _tsv(DATA / "sst2" / "dev.tsv")


def load_banking77() -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    def read(name: str) -> list[tuple[str, str]]:
        with open(DATA / "banking77" / name, encoding="utf-8", newline="") as fh:
            return [(r["text"].strip(), r["category"]) for r in csv.DictReader(fh)]

    return read("train.csv"), read("test.csv")


LOADERS = {"cr": load_cr, "sst2": load_sst2, "banking77": load_banking77}


def per_class(rows: list[tuple[str, str]], n: int, seed: int | None) -> list[tuple[str, str]]:
    """``n`` rows of each label: a seeded sample, or the first ``n`` (seed None)."""
    by = defaultdict(list)
    for r in rows:
        by[r[1]].append(r)
    rng = random.Random(seed)
    out = []
    for label in sorted(by):
        out += rng.sample(by[label], n) if seed is not None else by[label][:n]
    if seed is not None:
        rng.shuffle(out)
    return out


def write_csv(path: Path, rows: list[tuple[str, str]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["text", "label"])
        w.writerows(rows)
    return path


def run_lmkernel(train: Path, test: Path, seed: int, workdir: Path, head: str, options: dict) -> dict:
    import lmkernel
    from lmkernel.spec import parse_spec

    spec = parse_spec({
        "seed": seed, "data": {"train": str(train), "test": str(test), "max_length": 128},
        "model": {"name": "minilm"}, "tuning": {"method": "fewshot", "fewshot": {**options, "head": head}},
        "output": {"dir": str(workdir / f"lmk-{head}-{seed}")},
    })
    start, cpu = time.perf_counter(), time.process_time()
    result = lmkernel.run(spec, progress=False)
    return {"accuracy": result.metrics["test"]["accuracy"], "seconds": time.perf_counter() - start,
            "cpu_seconds": time.process_time() - cpu, "steps": result.metrics["training"]["optimizer steps"]}


def run_plain(train: list[tuple[str, str]], test: list[tuple[str, str]], seed: int, epochs: int = 10,
              lr: float = 5e-5, batch_size: int = 8) -> dict:
    """Plain fine-tuning, written as a user would with transformers and torch alone."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, get_linear_schedule_with_warmup

    from lmkernel.models.resolve import resolve_model_path

    start, cpu = time.perf_counter(), time.process_time()
    torch.manual_seed(seed)
    path = resolve_model_path("minilm")
    labels = sorted({y for _, y in train})
    index = {y: i for i, y in enumerate(labels)}
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=len(labels))
    optim = torch.optim.AdamW(model.parameters(), lr=lr)
    steps = epochs * -(-len(train) // batch_size)
    sched = get_linear_schedule_with_warmup(optim, 0, steps)
    rng = random.Random(seed)
    model.train()
    for _ in range(epochs):
        order = list(train)
        rng.shuffle(order)
        for at in range(0, len(order), batch_size):
            chunk = order[at:at + batch_size]
            batch = tok([t for t, _ in chunk], padding=True, truncation=True, max_length=128, return_tensors="pt")
            loss = model(**batch, labels=torch.tensor([index[y] for _, y in chunk])).loss
            loss.backward()
            optim.step()
            sched.step()
            optim.zero_grad()
    model.eval()
    correct = 0
    with torch.inference_mode():
        for at in range(0, len(test), 64):
            chunk = test[at:at + 64]
            batch = tok([t for t, _ in chunk], padding=True, truncation=True, max_length=128, return_tensors="pt")
            pred = model(**batch).logits.argmax(-1).tolist()
            correct += sum(labels[p] == y for p, (_, y) in zip(pred, chunk))
    return {"accuracy": correct / len(test), "seconds": time.perf_counter() - start,
            "cpu_seconds": time.process_time() - cpu, "steps": steps}


def summary(values: list[float]) -> str:
    mean = statistics.mean(values)
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{100 * mean:.1f} ± {100 * spread:.1f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", default="cr,sst2,banking77")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--shots", type=int, default=8)
    ap.add_argument("--test-per-class", type=int, default=0, help="keep the first N test rows per class (0: all)")
    ap.add_argument("--only", default="fewshot,prototype,plain")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="a tuning.fewshot option for the lmkernel runs, e.g. --set pairs_per_example=20")
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "fewshot.json"))
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    methods = args.only.split(",")
    options = {k: json.loads(v) for k, v in (item.split("=", 1) for item in args.set)}
    seeds = [int(s) for s in args.seeds.split(",")]
    results: dict = {"cpu_capability": torch.backends.cpu.get_cpu_capability(), "threads": args.threads,
                     "shots": args.shots, "seeds": seeds, "fewshot_options": options, "datasets": {}}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for name in args.datasets.split(","):
            pool, test = LOADERS[name]()
            if args.test_per_class:
                test = per_class(test, args.test_per_class, None)
            test_file = write_csv(work / f"{name}-test.csv", test)
            rows: dict[str, list[dict]] = {m: [] for m in methods}
            for seed in seeds:
                train = per_class(pool, args.shots, seed)
                train_file = write_csv(work / f"{name}-train-{seed}.csv", train)
                for m in methods:
                    r = (run_plain(train, test, seed) if m == "plain" else
                         run_lmkernel(train_file, test_file, seed, work / name, "logistic" if m == "fewshot" else m,
                                      options))
                    rows[m].append(r)
                    results["datasets"][name] = {"train_rows": len(train), "test_rows": len(test), "runs": rows}
                    Path(args.out).write_text(json.dumps(results, indent=1), encoding="utf-8")  # kept if killed
                    print(f"{name} seed {seed} {m}: accuracy {100 * r['accuracy']:.1f}, {r['seconds']:.0f} s wall, "
                          f"{r['cpu_seconds']:.0f} CPU s, {r['steps']} steps", flush=True)
            results["datasets"][name] = {"train_rows": len(train), "test_rows": len(test), "runs": rows}
            print(f"\n{name}: {args.shots} per class ({len(train)} rows), test {len(test)} rows, seeds {seeds}")
            for m in methods:
                acc = [r["accuracy"] for r in rows[m]]
                print(f"  {m:10s} accuracy {summary(acc)}  {statistics.mean(r['seconds'] for r in rows[m]):.0f} s/seed "
                      f"wall, {statistics.mean(r['cpu_seconds'] for r in rows[m]) / args.threads:.0f} s/seed as CPU "
                      f"time / {args.threads} threads")
            if "fewshot" in rows and "plain" in rows:
                ratio = statistics.mean(r["accuracy"] for r in rows["fewshot"]) / statistics.mean(
                    r["accuracy"] for r in rows["plain"])
                print(f"  accuracy ratio fewshot / plain: {ratio:.2f}")
            if name == "cr" and "fewshot" in rows:
                print(f"  target: CR mean >= {SETFIT_CR_8SHOT} (SetFit, all-MiniLM-L6-v2, 8 per class)")
    print(f"\ncpu capability: {results['cpu_capability']}, torch threads: {args.threads}")
    Path(args.out).write_text(json.dumps(results, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
