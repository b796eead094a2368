"""Every tuning method on the same work, in one run: accuracy gap to full fine-tuning, trainable share,
training speed and peak memory.

    .venv/bin/python bench/peft_methods.py [--train-rows 20000] [--epochs 2] [--methods full,lora,...]
    .venv/bin/python bench/peft_methods.py --part translation [--pairs 1000] [--methods lora,dora,ia3,prefix]

classification: the bundled MiniLM on the first N SST-2 training rows, evaluated on the full dev set.
translation: SmolLM2 on the first N Multi30k en->de pairs (BLEU on the first 200 validation pairs, or
--eval-samples).
Each method runs in its own process (so its peak RSS is its own), with lmkernel's defaults for that
method; full fine-tuning is the baseline every row is compared with. Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
# name in the table -> (tuning.method, extra overrides)
VARIANTS = {
    "full": ("full", []), "lora": ("lora", []), "dora": ("lora", ["tuning.lora.use_dora=true"]),
    "rslora": ("lora", ["tuning.lora.use_rslora=true"]), "adalora": ("adalora", []), "ia3": ("ia3", []),
    "adapter": ("adapter", []), "adapter-pfeiffer": ("adapter", ["tuning.adapter.placement=pfeiffer"]),
    "prefix": ("prefix", []), "prompt": ("prompt", []), "freeze": ("freeze", []),
}
PARTS = {"classification": "full,lora,dora,rslora,adalora,ia3,adapter,prompt",
         "translation": "full,lora,dora,ia3,prefix"}


def _write_sst2(rows: int, out: Path) -> Path:
    lines = (DATA / "sst2" / "train.tsv").read_text(encoding="utf-8").splitlines()
    out.write_text("\n".join(lines[: rows + 1]) + "\n", encoding="utf-8")
    return out


def _write_pairs(n: int, tmp: Path) -> tuple[Path, Path]:
    import json as _json

    def pairs(split: str, limit: int) -> list[dict]:
        en = (DATA / "multi30k" / f"{split}.en").read_text(encoding="utf-8").splitlines()[:limit]
        de = (DATA / "multi30k" / f"{split}.de").read_text(encoding="utf-8").splitlines()[:limit]
        return [{"source": s, "target": t} for s, t in zip(en, de)]

    train, val = tmp / "train.jsonl", tmp / "val.jsonl"
    for path, rows in ((train, pairs("train", n)), (val, pairs("val", 200))):
        path.write_text("".join(_json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return train, val


def run_one(part: str, name: str, args: argparse.Namespace, tmp: Path) -> dict:
    """One method in this process: train, evaluate, report what the table needs."""
    sys.path.insert(0, str(REPO / "src"))
    import lmkernel
    from lmkernel.spec import parse_spec

    method, extra = VARIANTS[name]
    if part == "classification":
        tree = {"seed": args.seed, "data": {"train": str(_write_sst2(args.train_rows, tmp / "train.tsv")),
                                            "validation": str(DATA / "sst2" / "dev.tsv"),
                                            "text_column": "sentence", "label_column": "label"},
                "model": {"name": "minilm"}, "train": {"epochs": args.epochs, "batch_size": 32}}
    else:
        train, val = _write_pairs(args.pairs, tmp)
        tree = {"seed": args.seed, "task": {"type": "translation", "eval_samples": args.eval_samples,
                                            "max_new_tokens": 48},
                "data": {"train": str(train), "validation": str(val), "max_length": 128},
                "model": {"name": "smollm2"}, "train": {"epochs": args.epochs, "batch_size": 8}}
    tree["tuning"] = {"method": method}
    tree["output"] = {"dir": str(tmp / f"run-{name}")}
    for item in extra:
        key, value = item.split("=", 1)
        node = tree
        for part_key in key.split(".")[:-1]:
            node = node.setdefault(part_key, {})
        node[key.split(".")[-1]] = yaml.safe_load(value)
    start = time.perf_counter()
    result = lmkernel.run(parse_spec(tree), progress=False)
    wall = time.perf_counter() - start
    m = result.metrics
    metric = "accuracy" if part == "classification" else "bleu"
    return {"name": name, "method": method, metric: m.get(metric, m.get("validation", {}).get(metric)),
            "samples_per_s": m["training"]["train samples/s"], "train_s": m["training"]["train time (s)"],
            "wall_s": round(wall, 1), "trainable": m["trainable_params"] / m["total_params"],
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "precision": m["training"]["precision"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--part", choices=sorted(PARTS), default="classification")
    p.add_argument("--methods", help="comma-separated rows (default: the issue's list for the part); "
                   "known: " + ", ".join(VARIANTS))
    p.add_argument("--train-rows", type=int, default=20000, help="classification: SST-2 training rows")
    p.add_argument("--pairs", type=int, default=1000, help="translation: Multi30k training pairs")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--eval-samples", type=int, default=200, help="translation: validation pairs translated for BLEU")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "peft_methods.json")
    p.add_argument("--one", help=argparse.SUPPRESS)  # internal: run one method in this process
    args = p.parse_args()
    if args.one:
        with tempfile.TemporaryDirectory() as tmp:
            print("RESULT " + json.dumps(run_one(args.part, args.one, args, Path(tmp))))
        return

    import torch

    names = (args.methods or PARTS[args.part]).split(",")
    rows = []
    for name in names:
        cmd = [sys.executable, __file__, "--part", args.part, "--one", name, "--train-rows", str(args.train_rows),
               "--pairs", str(args.pairs), "--epochs", str(args.epochs), "--seed", str(args.seed),
               "--eval-samples", str(args.eval_samples)]
        out = subprocess.run(cmd, capture_output=True, text=True)
        line = next((x for x in out.stdout.splitlines() if x.startswith("RESULT ")), None)
        if line is None:
            print(f"{name}: failed\n{out.stderr[-2000:]}", file=sys.stderr)
            continue
        rows.append(json.loads(line[7:]))
        print(f"{name}: {rows[-1]}", flush=True)
    metric = "accuracy" if args.part == "classification" else "bleu"
    base = next((r for r in rows if r["name"] == "full"), None)
    print(f"\nCPU capability: {torch.backends.cpu.get_cpu_capability()}, {os.cpu_count()} cores, "
          f"{platform.processor() or platform.machine()}")
    print(f"{'method':18} {metric:>9} {'gap':>7} {'trainable':>10} {'samples/s':>10} {'speed':>6} {'peak MB':>8}")
    for r in rows:
        gap = (r[metric] - base[metric]) * (100 if metric == "accuracy" else 1) if base else float("nan")
        speed = r["samples_per_s"] / base["samples_per_s"] if base else float("nan")
        print(f"{r['name']:18} {r[metric]:9.4f} {gap:+7.2f} {r['trainable']:10.2%} {r['samples_per_s']:10.1f} "
              f"{speed:5.2f}x {r['peak_rss_mb']:8.0f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"part": args.part, "train_rows": args.train_rows, "epochs": args.epochs,
                                    "cpu": torch.backends.cpu.get_cpu_capability(), "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
