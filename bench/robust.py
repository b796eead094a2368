"""Adversarial training and robustness on small SST-2: no adversarial training (the baseline) against
fgm, pgd, freelb and R-Drop, in one run.

    .venv/bin/python bench/robust.py [--sizes 100 500] [--seeds 5] [--configs baseline fgm pgd freelb rdrop]
                                     [--epochs 4] [--out bench/results/robust.jsonl]

For each training size and seed, draws that many SST-2 training rows (by the seed), fine-tunes MiniLM
(full) through ``lmkernel.run`` once per config with the same data, epochs, batch size and learning rate,
then evaluates the run with ``lmkernel eval --robustness``'s function on the SST-2 dev set: clean
accuracy and accuracy on the dev set perturbed by typos and by synonym swaps (evaluation/perturb.py,
a generator separate from ``data.augment``). Prints mean ± std over seeds per (size, config) and the
differences from the baseline. Each finished run is appended to the JSONL file, so a killed bench
resumes where it stopped.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
SST2 = REPO.parent / "shared" / "data" / "sst2"
CONFIGS = {
    "baseline": {},
    "fgm": {"adversarial": {"method": "fgm", "epsilon": 1.0}},
    "pgd": {"adversarial": {"method": "pgd", "epsilon": 1.0, "alpha": 0.3, "steps": 3}},
    "freelb": {"adversarial": {"method": "freelb", "epsilon": 1.0, "alpha": 0.3, "steps": 3}},
    "rdrop": {"rdrop": 1.0},
    "fgm+rdrop": {"adversarial": {"method": "fgm", "epsilon": 1.0}, "rdrop": 1.0},
}
KINDS = ("typo", "synonym")


def sample_train(size: int, seed: int, workdir: Path) -> Path:
    """``size`` SST-2 training rows drawn by ``seed``, written as a TSV with the original header."""
    lines = (SST2 / "train.tsv").read_text(encoding="utf-8").splitlines()
    rows = random.Random(seed).sample(lines[1:], size)
    path = workdir / f"train-{size}-{seed}.tsv"
    path.write_text("\n".join([lines[0], *rows]) + "\n", encoding="utf-8")
    return path


def dev_examples(rows: int | None) -> list:
    """The SST-2 dev set (its first ``rows`` rows when given) as classification examples."""
    from lmkernel.tasks.base import Example

    lines = (SST2 / "dev.tsv").read_text(encoding="utf-8").splitlines()[1:]
    pairs = [line.rsplit("\t", 1) for line in lines][:rows]
    return [Example(text=t.strip(), label=lab, file="dev.tsv", line=i + 2) for i, (t, lab) in enumerate(pairs)]


def _config(config: str, epsilon: float | None) -> dict:
    """The config's train options, its adversarial epsilon replaced when --epsilon is given."""
    opts = json.loads(json.dumps(CONFIGS[config]))
    if epsilon is not None and "adversarial" in opts:
        opts["adversarial"]["epsilon"] = epsilon
    return opts


def one_run(config: str, train_file: Path, seed: int, args, workdir: Path, dev: list) -> dict:
    import lmkernel
    from lmkernel.artifact import load
    from lmkernel.device import make_accelerator
    from lmkernel.evaluation.robustness import perturbed_accuracy
    from lmkernel.spec import parse_spec

    run_dir = workdir / f"{train_file.stem}-{config}"
    spec = parse_spec({
        "seed": seed, "data": {"train": str(train_file), "text_column": "sentence", "label_column": "label"},
        "model": {"name": args.model}, "tuning": {"method": "full"},
        "train": {**({} if args.epochs == 0 else {"epochs": args.epochs, "batch_size": 16, "lr": args.lr}),
                  **_config(config, args.epsilon)},
        "output": {"dir": str(run_dir)},
    })
    result = lmkernel.run(spec, progress=False)
    loaded = load(run_dir, backend="exact")
    accelerator = make_accelerator("fp32")
    rob = perturbed_accuracy(loaded.task, accelerator.prepare(loaded.model), loaded.tokenizer, dev, loaded.labels,
                             accelerator=accelerator, pad_id=loaded.tokenizer.pad_token_id or 0, max_length=128,
                             batch_size=64, kinds=KINDS)  # the generator's seed 0: the same perturbed dev set
    shutil.rmtree(run_dir)  # a MiniLM artifact per run would fill the disk
    return {"clean": rob["clean"], **{k: rob[k]["accuracy"] for k in KINDS},
            "train_s": result.metrics["training"]["train time (s)"]}


def summarise(rows: list[dict], configs: list[str]) -> list[str]:
    """A markdown table: mean ± std (points) per size and config, and the mean difference from the baseline."""
    def stat(vals: list[float]) -> str:
        sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
        return f"{100 * statistics.mean(vals):.1f} ± {100 * sd:.1f}"

    out = ["| rows | config | seeds | clean dev | typo dev | synonym dev | perturbed mean | Δ clean | "
           "Δ perturbed | train s/run |", "|---|---|---|---|---|---|---|---|---|---|"]
    for size in sorted({r["size"] for r in rows}):
        base = {r["seed"]: r for r in rows if r["size"] == size and r["config"] == "baseline"}
        for config in configs:
            got = [r for r in rows if r["size"] == size and r["config"] == config]
            if not got:
                continue
            pert = [(r["typo"] + r["synonym"]) / 2 for r in got]
            paired = [r for r in got if r["seed"] in base]
            d_clean = statistics.mean([r["clean"] - base[r["seed"]]["clean"] for r in paired]) if paired else 0
            d_pert = statistics.mean([(r["typo"] + r["synonym"] - base[r["seed"]]["typo"]
                                       - base[r["seed"]]["synonym"]) / 2 for r in paired]) if paired else 0
            out.append(f"| {size} | {config} | {len(got)} | {stat([r['clean'] for r in got])} | "
                       f"{stat([r['typo'] for r in got])} | {stat([r['synonym'] for r in got])} | {stat(pert)} | "
                       f"{100 * d_clean:+.1f} | {100 * d_pert:+.1f} | "
                       f"{statistics.mean([r['train_s'] for r in got]):.0f} |")
    return out


def main() -> None:
    import torch

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[100, 500])
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    p.add_argument("--epochs", type=int, default=4, help="0: let the small-data rule choose epochs, batch and lr")
    p.add_argument("--epsilon", type=float, default=None, help="Adversarial epsilon for fgm/pgd/freelb (default 1.0)")
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--model", default="minilm", help="Model alias or path (a tiny one checks the script).")
    p.add_argument("--dev-rows", type=int, default=None, help="Evaluate on the first N dev rows (default: all 872).")
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "robust.jsonl")
    args = p.parse_args()
    done = [json.loads(line) for line in args.out.read_text().splitlines()] if args.out.exists() else []
    args.out.parent.mkdir(parents=True, exist_ok=True)
    dev = dev_examples(args.dev_rows)
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            for seed in range(1, args.seeds + 1):
                train_file = sample_train(size, seed, Path(tmp))
                for config in args.configs:
                    if any(r["size"] == size and r["seed"] == seed and r["config"] == config for r in done):
                        continue
                    row = {"size": size, "seed": seed, "config": config,
                           "epochs": args.epochs or "auto", "lr": args.lr if args.epochs else "auto",
                           "epsilon": args.epsilon,
                           "dev_rows": len(dev),
                           **one_run(config, train_file, seed, args, Path(tmp), dev)}
                    done.append(row)
                    with open(args.out, "a", encoding="utf-8") as fh:
                        fh.write(json.dumps(row) + "\n")
                    print(json.dumps(row), flush=True)
    print("\n".join(summarise(done, args.configs)))
    print(f"cpu capability: {torch.backends.cpu.get_cpu_capability()}, threads: {torch.get_num_threads()}")


if __name__ == "__main__":
    main()
