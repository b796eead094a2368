"""SST-2 fine-tuning: lmkernel (full, LoRA) against Hugging Face Trainer, in one run.

    .venv/bin/python bench/classification.py [--train-rows 20000] [--epochs 2] [--only lmk-full,trainer] [--seed 42]

Fine-tunes the bundled MiniLM on the first N SST-2 training rows and evaluates on the full dev
set, four ways with the same data, epochs and batch size:
  lmk-full       lmkernel, tuning.method=full, every other setting at lmkernel's default
  lmk-lora       lmkernel, tuning.method=lora, defaults
  trainer        transformers Trainer with default arguments (random batches, fp32)
  trainer-best   Trainer with its best CPU flags: group_by_length, plus bf16 where the CPU runs it
                 fast (AVX512-BF16/AMX); on other CPUs bf16 is ~100x slower, so it is left off
Prints dev accuracy, training samples/s, trainable share and the throughput ratios; writes JSON.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
SST2 = REPO.parent / "shared" / "data" / "sst2"


def read_tsv(path: Path, limit: int | None = None) -> list[tuple[str, int]]:
    rows = []
    with open(path, encoding="utf-8") as fh:
        reader = csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)
        next(reader)
        for text, label in reader:
            rows.append((text.strip(), int(label)))
            if limit and len(rows) >= limit:
                break
    return rows


def run_lmkernel(method: str, train_file: Path, epochs: int, batch_size: int, workdir: Path, seed: int = 42) -> dict:
    import lmkernel
    from lmkernel.spec import parse_spec

    spec = parse_spec({
        "seed": seed,
        "data": {"train": str(train_file), "validation": str(SST2 / "dev.tsv"),
                 "text_column": "sentence", "label_column": "label"},
        "model": {"name": "minilm"}, "tuning": {"method": method},
        "train": {"epochs": epochs, "batch_size": batch_size},
        "output": {"dir": str(workdir / f"lmk-{method}")},
    })
    result = lmkernel.run(spec, progress=False)
    m = result.metrics
    return {"accuracy": m["accuracy"], "samples_per_s": m["training"]["train samples/s"],
            "train_s": m["training"]["train time (s)"], "trainable": m["trainable_params"] / m["total_params"],
            "precision": m["training"]["precision"]}


def plain_trainer(train_rows, eval_rows, labels: list, output_dir: Path, seed: int, max_length: int = 128,
                  **training_args) -> dict:
    """A plain transformers Trainer script on MiniLM: (text, label) rows, ``labels`` in head order, the Trainer's
    own defaults except ``training_args``; the baseline bench/classification.py and bench/smalldata.py share."""
    import numpy as np
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
        TrainingArguments,
        set_seed,
    )

    from lmkernel.models import resolve_model_path

    path = resolve_model_path("minilm")
    tok = AutoTokenizer.from_pretrained(path)
    index = {lab: i for i, lab in enumerate(labels)}

    def encoded(rows) -> list[dict]:  # a list is a map-style dataset to the Trainer's DataLoader
        enc = tok([t for t, _ in rows], truncation=True, max_length=max_length)
        return [{"input_ids": ids, "attention_mask": m, "labels": index[lab]}
                for ids, m, (_, lab) in zip(enc["input_ids"], enc["attention_mask"], rows)]

    set_seed(seed)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=len(labels))
    args = TrainingArguments(output_dir=str(output_dir), use_cpu=True, save_strategy="no", report_to="none",
                             seed=seed, disable_tqdm=True, logging_strategy="no", **training_args)
    trainer = Trainer(model=model, args=args, train_dataset=encoded(train_rows),
                      data_collator=DataCollatorWithPadding(tok))
    out = trainer.train()
    pred = trainer.predict(encoded(eval_rows))
    return {"accuracy": float((np.argmax(pred.predictions, -1) == pred.label_ids).mean()), "train": out}


def run_trainer(best: bool, train_rows, dev_rows, epochs: int, batch_size: int, workdir: Path, seed: int = 42
                ) -> dict:
    from lmkernel.device import cpu_has_fast_bf16

    bf16 = best and cpu_has_fast_bf16()
    extra = {"train_sampling_strategy": "group_by_length", "bf16": bf16} if best else {}
    r = plain_trainer(train_rows, dev_rows, [0, 1], workdir / f"trainer-{best}", seed, per_device_train_batch_size=
                      batch_size, per_device_eval_batch_size=64, num_train_epochs=epochs, **extra)
    out = r["train"]
    return {"accuracy": r["accuracy"], "samples_per_s": out.metrics["train_samples_per_second"],
            "train_s": out.metrics["train_runtime"], "trainable": 1.0,
            "precision": "bf16" if bf16 else "no", "flags": extra}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train-rows", type=int, default=20000, help="first N SST-2 training rows")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--only", default="lmk-full,lmk-lora,trainer,trainer-best", help="comma-separated variants")
    ap.add_argument("--seed", type=int, default=42, help="seed of every variant (model init of the head, "
                    "data order, dropout): run-to-run spread of dev accuracy comes from here")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "classification.json")
    args = ap.parse_args()

    import torch
    from transformers.utils import logging as hf_logging

    from lmkernel.device import cpu_has_fast_bf16

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    train_rows = read_tsv(SST2 / "train.tsv", args.train_rows)
    dev_rows = read_tsv(SST2 / "dev.tsv")
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        train_file = work / "train.tsv"
        with open(train_file, "w", encoding="utf-8") as fh:
            fh.write("sentence\tlabel\n" + "".join(f"{t}\t{lab}\n" for t, lab in train_rows))
        for name in args.only.split(","):
            t0 = time.perf_counter()
            if name.startswith("lmk-"):
                results[name] = run_lmkernel(name[4:], train_file, args.epochs, args.batch_size, work, args.seed)
            else:
                results[name] = run_trainer(name == "trainer-best", train_rows, dev_rows, args.epochs,
                                            args.batch_size, work, args.seed)
            results[name]["wall_s"] = round(time.perf_counter() - t0, 1)
            print(f"{name}: {json.dumps(results[name])}", flush=True)

    base = results.get("trainer", {}).get("samples_per_s")
    best = results.get("trainer-best", {}).get("samples_per_s")
    print(f"\nSST-2 first {args.train_rows} rows, {args.epochs} epochs, batch {args.batch_size}, seed {args.seed}; "
          "dev = 872 sentences")
    print(f"machine: {platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}, "
          f"CPU capability {torch.backends.cpu.get_cpu_capability()}, fast bf16: {cpu_has_fast_bf16()}\n")
    print("| variant | dev accuracy | train samples/s | vs Trainer default | vs Trainer best | trainable | precision |")
    print("|---|---|---|---|---|---|---|")
    for name, r in results.items():
        vs_base = f"{r['samples_per_s'] / base:.2f}x" if base else "-"
        vs_best = f"{r['samples_per_s'] / best:.2f}x" if best else "-"
        print(f"| {name} | {r['accuracy']:.4f} | {r['samples_per_s']:.1f} | {vs_base} | {vs_best} | "
              f"{100 * r['trainable']:.2f}% | {r['precision']} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"args": vars(args) | {"out": str(args.out)}, "results": results,
                                    "fast_bf16": cpu_has_fast_bf16()}, indent=2))


if __name__ == "__main__":
    main()
