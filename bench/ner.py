"""CoNLL-2003 NER: lmkernel fine-tunes MiniLM and reports test F1; Trainer runs the same slice for speed.

    flock /tmp/lmk-bench.lock .venv/bin/python bench/ner.py [--epochs 3] [--lr 1.5e-4] [--train-sentences N]

Two parts, in one run (f1 first):
  speed  lmkernel and transformers ``Trainer`` (default arguments: random batches, fp32, the
         standard HF token-classification recipe) fine-tune MiniLM on the same first
         ``--speed-sentences`` training sentences for one epoch with the same batch size and lr;
         training samples/s of each and the ratio.
  f1     lmkernel (``task: ner``, full fine-tuning) on CoNLL-2003 train (valid.txt selects the best
         epoch), entity-level F1 on test.txt with seqeval; target >= 0.85.
The Trainer baseline is not trained to convergence by default: three epochs of it on this 2-core
CPU take longer than the benchmark's budget (``--trainer-full`` does it anyway).
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
# Threads that sleep instead of spinning while waiting: on a 2-core machine shared with other jobs,
# spinning OpenMP threads made a training step ~3x slower than one thread (both variants get it).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
CONLL = REPO.parent / "shared" / "data" / "conll2003"


def read_conll(path: Path, limit: int | None = None) -> list[tuple[list[str], list[str]]]:
    from lmkernel.data.conll import read_tagged

    sents = read_tagged(path).sentences
    return [(s.tokens, s.tags) for s in sents[:limit]]


def write_conll(path: Path, sents) -> Path:
    with open(path, "w", encoding="utf-8") as fh:
        for toks, tags in sents:
            fh.write("".join(f"{t} {g}\n" for t, g in zip(toks, tags)) + "\n")
    return path


def run_lmkernel(train: Path, validation: Path | None, test: Path | None, epochs: int, lr: float,
                 batch_size: int, out: Path, progress: bool = False) -> dict:
    import lmkernel
    from lmkernel.spec import parse_spec

    data = {"train": str(train), "max_length": 128}
    data |= {"validation": str(validation)} if validation else {}
    data |= {"test": str(test)} if test else {}
    spec = parse_spec({"task": {"type": "ner"}, "data": data, "model": {"name": "minilm"},
                       "tuning": {"method": "full"},
                       "train": {"epochs": epochs, "batch_size": batch_size, "lr": lr},
                       "output": {"dir": str(out)}})
    t0 = time.perf_counter()
    result = lmkernel.run(spec, progress=progress)
    m = result.metrics
    r = {"samples_per_s": m["training"]["train samples/s"], "train_s": m["training"]["train time (s)"],
         "wall_s": round(time.perf_counter() - t0, 1), "precision": m["training"]["precision"],
         "best_step": m["training"].get("best step")}
    if "test" in m:
        t = m["test"]
        r |= {"test_f1": t["f1"], "test_precision": t["precision"], "test_recall": t["recall"],
              "per_type": {k: round(v["f1"], 4) for k, v in t["per_class"].items()}}
    if "validation" in m:
        r["validation_f1"] = m["validation"]["f1"]
    return r


def run_trainer(train_sents, test_sents, epochs: int, lr: float, batch_size: int, out: Path) -> dict:
    """The Hugging Face token-classification recipe (first sub-token labelled, others -100)."""
    import numpy as np
    from seqeval.metrics import f1_score
    from transformers import (
        AutoModelForTokenClassification,
        AutoTokenizer,
        DataCollatorForTokenClassification,
        Trainer,
        TrainingArguments,
        set_seed,
    )

    from lmkernel.models import resolve_model_path

    path = resolve_model_path("minilm")
    tok = AutoTokenizer.from_pretrained(path)
    labels = ["O"] + sorted({t for _, tags in train_sents for t in tags} - {"O"})
    index = {lab: i for i, lab in enumerate(labels)}

    def encode(sents):
        enc = tok([s for s, _ in sents], is_split_into_words=True, truncation=True, max_length=128)
        items = []
        for k, (_, tags) in enumerate(sents):
            prev, lab = None, []
            for w in enc.word_ids(k):
                lab.append(-100 if w is None or w == prev else index.get(tags[w], 0))
                prev = w
            items.append({"input_ids": enc["input_ids"][k], "attention_mask": enc["attention_mask"][k],
                          "labels": lab})
        return items

    set_seed(42)
    model = AutoModelForTokenClassification.from_pretrained(path, num_labels=len(labels),
                                                            id2label=dict(enumerate(labels)), label2id=index)
    args = TrainingArguments(output_dir=str(out), per_device_train_batch_size=batch_size, learning_rate=lr,
                             per_device_eval_batch_size=64, num_train_epochs=epochs, use_cpu=True,
                             save_strategy="no", report_to="none", seed=42, disable_tqdm=True,
                             logging_strategy="no")
    trainer = Trainer(model=model, args=args, train_dataset=encode(train_sents),
                      data_collator=DataCollatorForTokenClassification(tok))
    metrics = trainer.train().metrics
    r = {"samples_per_s": metrics["train_samples_per_second"], "train_s": metrics["train_runtime"]}
    if test_sents:
        pred = trainer.predict(encode(test_sents))
        ids = np.argmax(pred.predictions, -1)
        gold_seqs = [[labels[g] for g in row if g != -100] for row in pred.label_ids]
        pred_seqs = [[labels[p] for p, g in zip(prow, grow) if g != -100] for prow, grow in zip(ids, pred.label_ids)]
        r["test_f1"] = f1_score(gold_seqs, pred_seqs)
    return r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--lr", type=float, default=1.5e-4)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--train-sentences", type=int, default=None, help="first N training sentences (default all)")
    ap.add_argument("--speed-sentences", type=int, default=500, help="sentences of the speed comparison (0: skip)")
    ap.add_argument("--skip-f1", action="store_true", help="only the speed comparison")
    ap.add_argument("--trainer-full", action="store_true", help="also train the Trainer baseline fully (slow)")
    ap.add_argument("--progress", action="store_true", help="progress bars of the F1 run on stderr")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "ner.json")
    args = ap.parse_args()

    import torch
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    results: dict[str, dict] = {}
    load_start = os.getloadavg()
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if not args.skip_f1:
            train = CONLL / "train.txt"
            if args.train_sentences:
                train = write_conll(work / "train.conll", read_conll(train, args.train_sentences))
            results["f1-lmkernel"] = run_lmkernel(train, CONLL / "valid.txt", CONLL / "test.txt", args.epochs,
                                                  args.lr, args.batch_size, work / "f1-lmk", args.progress)
            print("f1-lmkernel:", json.dumps(results["f1-lmkernel"]), flush=True)
            if args.trainer_full:
                results["f1-trainer"] = run_trainer(read_conll(train), read_conll(CONLL / "test.txt"), args.epochs,
                                                    args.lr, args.batch_size, work / "f1-hf")
                print("f1-trainer:", json.dumps(results["f1-trainer"]), flush=True)
        if args.speed_sentences:
            sents = read_conll(CONLL / "train.txt", args.speed_sentences)
            part = write_conll(work / "speed.conll", sents)
            results["speed-lmkernel"] = run_lmkernel(part, None, None, 1, args.lr, args.batch_size, work / "s-lmk")
            print("speed-lmkernel:", json.dumps(results["speed-lmkernel"]), flush=True)
            results["speed-trainer"] = run_trainer(sents, None, 1, args.lr, args.batch_size, work / "s-hf")
            print("speed-trainer:", json.dumps(results["speed-trainer"]), flush=True)

    total = time.perf_counter() - start
    print(f"\nMiniLM on CoNLL-2003, batch {args.batch_size}, lr {args.lr}; machine {platform.machine()}, "
          f"{torch.get_num_threads()} threads, CPU capability {torch.backends.cpu.get_cpu_capability()}; "
          f"total wall {total / 60:.1f} min; load average at start {load_start[0]:.1f}, at end "
          f"{os.getloadavg()[0]:.1f}\n")
    if "speed-lmkernel" in results:
        lmk, hf = results["speed-lmkernel"]["samples_per_s"], results["speed-trainer"]["samples_per_s"]
        print(f"speed, first {args.speed_sentences} sentences x 1 epoch: lmkernel {lmk:.1f} samples/s, "
              f"Trainer {hf:.1f} samples/s, ratio {lmk / hf:.2f}x")
    if "f1-lmkernel" in results:
        r = results["f1-lmkernel"]
        print(f"f1: lmkernel {args.epochs} epochs on {args.train_sentences or 'all'} train sentences: test F1 "
              f"{r['test_f1']:.4f} (P {r['test_precision']:.4f}, R {r['test_recall']:.4f}; per type "
              f"{r['per_type']}), validation F1 {r['validation_f1']:.4f}, {r['samples_per_s']:.1f} samples/s, "
              f"{r['wall_s'] / 60:.1f} min; target >= 0.85: {'met' if r['test_f1'] >= 0.85 else 'MISSED'}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "results": results,
                                    "total_wall_s": round(total, 1),
                                    "load_average": [load_start[0], os.getloadavg()[0]]}, indent=2))


if __name__ == "__main__":
    main()
