"""Extractive QA: lmkernel's ``qa`` task fine-tunes MiniLM; the Hugging Face QA recipe trains the same split.

    nice -n 5 .venv/bin/python bench/qa.py --lang zh [--extend] [--train-questions N] [--test-questions M]
    nice -n 5 .venv/bin/python bench/qa.py --lang en

Splits, by context (a context's questions are never on both sides), seeded (``--seed``, default 0):
  zh  CMRC 2018 squad-style: the 848 dev contexts shuffled, 70 % (594) to train, 30 % (254) to test;
      the 256 trial contexts (1,002 questions) also train. The official train set is not in the snapshot.
  en  XQuAD English (240 SQuAD v1.1 dev paragraphs): shuffled, 70 % (168) train, 30 % (72) test.
``--train-questions`` / ``--test-questions`` keep whole contexts, in the shuffled order, until that many
questions (the 2-core budget); the run prints the counts it used.

Both sides read the same SQuAD-layout files and train the same model (MiniLM, or with ``--extend`` MiniLM
with its vocabulary extended by the training texts' unknown characters: ``pretrain.vocab``, no MLM) for the
same epochs, batch size, learning rate, max length, stride and precision (lmkernel's default: bf16
autocast on a CPU with fast bf16, which this one has; the baseline gets ``bf16=True`` then). The
baseline is transformers' ``run_qa.py`` recipe: ``prepare_train_features`` (windows padded to max
length, answer_start as given), ``Trainer``, ``postprocess_qa_predictions`` (n-best 20, answers up to
30 tokens, no null answer). Both are scored by lmkernel's EM/F1 (SQuAD's normalisation for en, CMRC
2018's for zh). Throughput is training windows per
second (a long context gives several windows).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # a shared 2-core machine: sleeping threads, not spinning
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
DATA = REPO.parent / "shared" / "data"
CMRC = DATA / "cmrc2018" / "squad-style-data"


# ------------------------------------------------------------------------------------------- data
def paragraphs(path: Path) -> list[dict]:
    """Each paragraph of a SQuAD-layout file: {"context", "qas"}."""
    obj = json.loads(path.read_text(encoding="utf-8"))
    return [p for article in obj["data"] for p in article["paragraphs"]]


def split(lang: str, seed: int) -> tuple[list[dict], list[dict]]:
    """(train, test) paragraphs: 70/30 by context, plus CMRC's trial set in train for zh."""
    if lang == "zh":
        pool, extra = paragraphs(CMRC / "cmrc2018_dev.json"), paragraphs(CMRC / "cmrc2018_trial.json")
    else:
        pool, extra = paragraphs(DATA / "xquad" / "xquad.en.json"), []
    random.Random(seed).shuffle(pool)
    cut = round(0.7 * len(pool))
    train = pool[:cut] + extra
    random.Random(seed + 1).shuffle(train)
    return train, pool[cut:]


def cap(paras: list[dict], questions: int | None) -> list[dict]:
    """Whole paragraphs, in order, until ``questions`` questions."""
    if not questions:
        return paras
    out, n = [], 0
    for p in paras:
        if n >= questions:
            break
        out.append(p)
        n += len(p["qas"])
    return out


def write_squad(path: Path, paras: list[dict]) -> Path:
    path.write_text(json.dumps({"version": "bench", "data": [{"title": "", "paragraphs": paras}]},
                               ensure_ascii=False), encoding="utf-8")
    return path


def extended_model(train: list[dict], out: Path) -> tuple[Path, dict]:
    """MiniLM with the training texts' unknown characters added to its vocabulary (mean-resized rows)."""
    from transformers import AutoModel, AutoTokenizer

    from lmkernel.models import resolve_model_path
    from lmkernel.pretrain.vocab import extend_tokenizer, resize_embeddings

    path = resolve_model_path("minilm")
    texts = [p["context"] for p in train] + [q["question"] for p in train for q in p["qas"]]
    tok, ext = extend_tokenizer(AutoTokenizer.from_pretrained(path), texts, min_frequency=1, max_new=10000)
    model = AutoModel.from_pretrained(path)
    resize_embeddings(model, len(tok))
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out, {"pieces_added": ext.added, "unk_before": round(ext.unk_before, 4),
                 "unk_after": round(ext.unk_after, 4)}


# ------------------------------------------------------------------------------------------- lmkernel
def run_lmkernel(train: Path, test: Path, model: str, args, out: Path) -> dict:
    import lmkernel
    from lmkernel.spec import parse_spec

    spec = parse_spec({"task": {"type": "qa", "doc_stride": args.doc_stride},
                       "data": {"train": str(train), "test": str(test), "max_length": args.max_length,
                                "on_bad_rows": "skip"},
                       "model": {"name": model}, "tuning": {"method": "full"},
                       "train": {"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr,
                                 "eval_batch_size": 32},
                       "seed": 42, "output": {"dir": str(out)}})
    from lmkernel.tasks.qa_data import read_qa

    t0 = time.perf_counter()
    m = lmkernel.run(spec, progress=False).metrics
    read = read_qa(train)
    return {"em": m["test"]["exact_match"], "f1": m["test"]["f1"], "samples_per_s": m["training"]["train samples/s"],
            "train_s": m["training"]["train time (s)"], "wall_s": round(time.perf_counter() - t0, 1),
            "precision": m["training"]["precision"], "train_answers_relocated": read.relocated,
            "train_questions_skipped": len(read.bad)}


# ------------------------------------------------------------------------------------------- baseline
def prepare_train(tok, paras: list[dict], max_length: int, stride: int) -> list[dict]:
    """run_qa.py's prepare_train_features."""
    qas = [(q["question"].lstrip(), p["context"], q["answers"]) for p in paras for q in p["qas"]]
    enc = tok([q for q, _, _ in qas], [c for _, c, _ in qas], truncation="only_second", max_length=max_length,
              stride=stride, return_overflowing_tokens=True, return_offsets_mapping=True, padding="max_length")
    feats = []
    for i, offsets in enumerate(enc["offset_mapping"]):
        ids, seq = enc["input_ids"][i], enc.sequence_ids(i)
        cls = ids.index(tok.cls_token_id)
        answers = qas[enc["overflow_to_sample_mapping"][i]][2]
        start_pos = end_pos = cls
        if answers:
            start_char = answers[0]["answer_start"]
            end_char = start_char + len(answers[0]["text"])
            ts, te = 0, len(ids) - 1
            while seq[ts] != 1:
                ts += 1
            while seq[te] != 1:
                te -= 1
            if offsets[ts][0] <= start_char and offsets[te][1] >= end_char:
                while ts < len(offsets) and offsets[ts][0] <= start_char:
                    ts += 1
                while offsets[te][1] >= end_char:
                    te -= 1
                start_pos, end_pos = ts - 1, te + 1
        feats.append({"input_ids": ids, "attention_mask": enc["attention_mask"][i],
                      "token_type_ids": enc["token_type_ids"][i], "start_positions": start_pos,
                      "end_positions": end_pos})
    return feats


def prepare_eval(tok, qas: list[tuple[str, str]], max_length: int, stride: int) -> tuple[list[dict], list, list]:
    """run_qa.py's prepare_validation_features: features, their example index, context-only offsets."""
    enc = tok([q.lstrip() for q, _ in qas], [c for _, c in qas], truncation="only_second", max_length=max_length,
              stride=stride, return_overflowing_tokens=True, return_offsets_mapping=True, padding="max_length")
    feats, owner, offsets = [], [], []
    for i, off in enumerate(enc["offset_mapping"]):
        seq = enc.sequence_ids(i)
        feats.append({"input_ids": enc["input_ids"][i], "attention_mask": enc["attention_mask"][i],
                      "token_type_ids": enc["token_type_ids"][i]})
        owner.append(enc["overflow_to_sample_mapping"][i])
        offsets.append([o if seq[k] == 1 else None for k, o in enumerate(off)])
    return feats, owner, offsets


def postprocess(qas, owner, offsets, start_logits, end_logits, n_best: int = 20, max_answer: int = 30) -> list[str]:
    """run_qa.py's postprocess_qa_predictions (version 1: no null answer)."""
    import numpy as np

    best: list[tuple[float, str]] = [(-1e9, "") for _ in qas]
    for f, ex in enumerate(owner):
        s, e, off = start_logits[f], end_logits[f], offsets[f]
        for a in np.argsort(s)[-1:-n_best - 1:-1]:
            for b in np.argsort(e)[-1:-n_best - 1:-1]:
                if off[a] is None or off[b] is None or b < a or b - a + 1 > max_answer:
                    continue
                score = float(s[a] + e[b])
                if score > best[ex][0]:
                    best[ex] = (score, qas[ex][1][off[a][0]:off[b][1]])
    return [text for _, text in best]


def run_baseline(train: list[dict], test: list[dict], model_path: Path, args, lang: str, out: Path,
                 bf16: bool) -> dict:
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer, Trainer, TrainingArguments, set_seed

    from lmkernel.evaluation.qa_metrics import qa_scores

    tok = AutoTokenizer.from_pretrained(model_path)
    set_seed(42)
    model = AutoModelForQuestionAnswering.from_pretrained(model_path)
    targs = TrainingArguments(output_dir=str(out), per_device_train_batch_size=args.batch_size,
                              per_device_eval_batch_size=32, learning_rate=args.lr, num_train_epochs=args.epochs,
                              use_cpu=True, save_strategy="no", report_to="none", seed=42, disable_tqdm=True,
                              logging_strategy="no", bf16=bf16)
    t0 = time.perf_counter()
    trainer = Trainer(model=model, args=targs, train_dataset=prepare_train(tok, train, args.max_length,
                                                                             args.doc_stride))
    metrics = trainer.train().metrics
    qas = [(q["question"], p["context"]) for p in test for q in p["qas"]]
    feats, owner, offsets = prepare_eval(tok, qas, args.max_length, args.doc_stride)
    pred = trainer.predict(feats)
    start_logits, end_logits = pred.predictions[:2]
    answers = postprocess(qas, owner, offsets, start_logits, end_logits)
    golds = [[a["text"] for a in q["answers"]] for p in test for q in p["qas"]]
    scores = qa_scores(answers, golds, lang)
    return {"em": scores["exact_match"], "f1": scores["f1"], "samples_per_s": metrics["train_samples_per_second"],
            "train_s": metrics["train_runtime"], "wall_s": round(time.perf_counter() - t0, 1),
            "precision": "bf16" if bf16 else "fp32"}


# ------------------------------------------------------------------------------------------- main
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lang", choices=["zh", "en"], required=True)
    ap.add_argument("--extend", action="store_true", help="zh: extend MiniLM's vocabulary with the training "
                    "texts' unknown characters first (both sides start from it)")
    ap.add_argument("--train-questions", type=int, default=None)
    ap.add_argument("--test-questions", type=int, default=None)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--doc-stride", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-baseline", action="store_true")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()

    import torch
    from transformers.utils import logging as hf_logging

    from lmkernel.models import resolve_model_path

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    load_start, start = os.getloadavg(), time.perf_counter()
    train_all, test_all = split(args.lang, args.seed)
    train, test = cap(train_all, args.train_questions), cap(test_all, args.test_questions)
    counts = {"train_contexts": len(train), "train_questions": sum(len(p["qas"]) for p in train),
              "test_contexts": len(test), "test_questions": sum(len(p["qas"]) for p in test),
              "split_train_contexts": len(train_all), "split_test_contexts": len(test_all)}
    print("split:", json.dumps(counts), flush=True)
    results: dict = {"counts": counts}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model_path = resolve_model_path("minilm")
        if args.extend:
            model_path, results["extension"] = extended_model(train, work / "minilm-extended")
            print("extension:", json.dumps(results["extension"]), flush=True)
        train_file, test_file = write_squad(work / "train.json", train), write_squad(work / "test.json", test)
        results["lmkernel"] = run_lmkernel(train_file, test_file, str(model_path), args, work / "lmk")
        print("lmkernel:", json.dumps(results["lmkernel"]), flush=True)
        if not args.skip_baseline:
            bf16 = results["lmkernel"]["precision"] == "bf16"  # the same arithmetic on both sides
            results["baseline"] = run_baseline(train, test, model_path, args, args.lang, work / "hf", bf16)
            print("baseline:", json.dumps(results["baseline"]), flush=True)
    total = time.perf_counter() - start
    print(f"\nMiniLM{' (vocabulary extended)' if args.extend else ''} QA on "
          f"{'CMRC 2018' if args.lang == 'zh' else 'XQuAD en'}: {counts['train_questions']} train / "
          f"{counts['test_questions']} test questions, {args.epochs} epochs, batch {args.batch_size}, lr {args.lr}, "
          f"max length {args.max_length}, stride {args.doc_stride}; {platform.machine()}, {torch.get_num_threads()} "
          f"threads, CPU capability {torch.backends.cpu.get_cpu_capability()}; wall {total / 60:.1f} min; load "
          f"average {load_start[0]:.1f} -> {os.getloadavg()[0]:.1f}")
    lmk = results["lmkernel"]
    print(f"lmkernel: EM {lmk['em']:.2f} F1 {lmk['f1']:.2f}, {lmk['samples_per_s']:.2f} windows/s ({lmk['precision']})")
    if "baseline" in results:
        hf = results["baseline"]
        print(f"baseline: EM {hf['em']:.2f} F1 {hf['f1']:.2f}, {hf['samples_per_s']:.2f} windows/s "
              f"({hf['precision']}); ratio "
              f"{lmk['samples_per_s'] / hf['samples_per_s']:.2f}x; F1 gap {lmk['f1'] - hf['f1']:+.2f}, "
              f"EM gap {lmk['em'] - hf['em']:+.2f}")
    out = args.out or REPO / "bench" / "results" / f"qa-{args.lang}{'-extended' if args.extend else ''}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "results": results,
                               "total_wall_s": round(total, 1)}, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
