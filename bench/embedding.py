"""Sentence-embedding fine-tuning: lmkernel's embedding task against plain transformers + torch, in one run.

    .venv/bin/python bench/embedding.py --dataset stsb [--train-rows 2000] [--dev-rows 0] [--epochs 1] [--batch-size 16]
    .venv/bin/python bench/embedding.py --dataset cnsd      # Chinese STS-B
    .venv/bin/python bench/embedding.py --dataset afqmc     # AFQMC label-1 pairs, in-batch negatives, recall@5

Both systems fine-tune the bundled MiniLM on the same first N training rows, for the same epochs, batch
size, learning rate, warmup and max length, with the same loss (CoSENT on scored pairs; in-batch
negatives on AFQMC's matching pairs), and are scored by the same code on the dev set (or its first N rows):
  before     MiniLM as shipped (mean pooling, normalised), no fine-tuning
  lmkernel   `task: {type: embedding}` through lmkernel.run, every other setting at its default
  baseline   what a user writes by hand: AutoModel + AutoTokenizer, mean pooling, the same loss, AdamW with
             linear warmup, shuffled batches padded per batch, fp32
Prints dev Spearman (STS) or recall@5 / MRR@10 (AFQMC), training samples/s and the ratios; writes JSON.
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
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
DATA = REPO.parent / "shared" / "data"
LR, WARMUP, MAX_LENGTH, SCALE = 2e-5, 0.1, 64, 20.0
MODEL: dict = {"name": "minilm", "keep": None, "lr": LR}  # --model, --keep, --lr


def read_stsb(split: str) -> list[tuple[str, str, float]]:
    """GLUE STS-B TSV: sentence1, sentence2, score (0-5); no quoting."""
    import csv

    with open(DATA / "stsb" / "STS-B" / f"{split}.tsv", encoding="utf-8") as fh:
        reader = csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)
        return [(r["sentence1"], r["sentence2"], float(r["score"])) for r in reader]


def read_cnsd(split: str) -> list[tuple[str, str, float]]:
    """Chinese STS-B: ``id||sentence1||sentence2||score`` per line."""
    rows = []
    for line in (DATA / "cnsd_stsb_zh" / f"cnsd-sts-{split}.txt").read_text(encoding="utf-8").splitlines():
        parts = line.split("||")
        if len(parts) == 4:
            rows.append((parts[1], parts[2], float(parts[3])))
    return rows


def read_afqmc(split: str) -> list[tuple[str, str, float]]:
    """AFQMC matching pairs only (label 1): query and its paraphrase."""
    rows = []
    for line in (DATA / "afqmc" / "afqmc_public" / f"{split}.json").read_text(encoding="utf-8").splitlines():
        r = json.loads(line)
        if r.get("label") == "1":
            rows.append((r["sentence1"], r["sentence2"], 1.0))
    return rows


READERS = {"stsb": (read_stsb, "train", "dev"), "cnsd": (read_cnsd, "train", "dev"),
           "afqmc": (read_afqmc, "train", "dev")}


def score(embed, dev: list[tuple[str, str, float]], dataset: str) -> dict:
    """Spearman of cosine against gold (STS); retrieval of each query's paraphrase among all (AFQMC)."""
    from scipy.stats import spearmanr

    from lmkernel.evaluation.ranking import ranking_metrics

    a = embed([r[0] for r in dev])
    b = embed([r[1] for r in dev])
    if dataset != "afqmc":
        return {"spearman": float(spearmanr((a * b).sum(1), [r[2] for r in dev]).statistic)}
    docs = list(dict.fromkeys(r[1] for r in dev))
    index = {d: i for i, d in enumerate(docs)}
    first = {}
    for i, r in enumerate(dev):
        first.setdefault(r[1], i)
    queries: dict[str, set[int]] = {}
    for r in dev:
        queries.setdefault(r[0], set()).add(index[r[1]])
    q_vecs = a[[next(i for i, r in enumerate(dev) if r[0] == q) for q in queries]]
    d_vecs = b[[first[d] for d in docs]]
    m = ranking_metrics(q_vecs @ d_vecs.T, list(queries.values()), ks=(1, 5))
    return {"recall@1": m["recall@1"], "recall@5": m["recall@5"], "mrr@10": m["mrr@10"],
            "queries": len(queries), "documents": len(docs)}


def unknown_share(texts: list[str]) -> float:
    """Share of MiniLM's tokens that are [UNK] in these texts (Chinese is mostly outside its vocabulary)."""
    from transformers import AutoTokenizer

    from lmkernel.models.resolve import resolve_model_path

    tok = AutoTokenizer.from_pretrained(str(resolve_model_path(MODEL["name"])))
    ids = [i for row in tok(texts, add_special_tokens=False)["input_ids"] for i in row]
    return round(sum(i == tok.unk_token_id for i in ids) / max(len(ids), 1), 3)


def run_lmkernel(train: list, dataset: str, epochs: int, batch_size: int, workdir: Path, seed: int) -> tuple:
    import lmkernel
    from lmkernel.spec import parse_spec

    path = workdir / "train.jsonl"
    keys = ("anchor", "positive") if dataset == "afqmc" else ("sentence1", "sentence2")
    with open(path, "w", encoding="utf-8") as fh:
        for s1, s2, sc in train:
            row = {keys[0]: s1, keys[1]: s2} | ({} if dataset == "afqmc" else {"score": sc})
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    spec = parse_spec({
        "seed": seed, "task": {"type": "embedding", "scale": SCALE},
        "data": {"train": str(path), "max_length": MAX_LENGTH},
        "model": {"name": MODEL["name"]}, "tuning": {"method": "full"},
        "train": {"epochs": epochs, "batch_size": batch_size, "lr": MODEL["lr"], "warmup_ratio": WARMUP},
        "output": {"dir": str(MODEL.get("keep") or workdir / "lmk")},
    })
    result = lmkernel.run(spec, progress=False)
    training = result.metrics["training"]
    model = lmkernel.load(result.run_dir)
    return (lambda texts: model.embed(texts, batch_size=64)), {
        "samples_per_s": training["train samples/s"], "train_s": training["train time (s)"],
        "precision": training["precision"]}


def run_baseline(train: list, dataset: str, epochs: int, batch_size: int, seed: int) -> tuple:
    """Plain transformers + torch, written the way the sentence-transformers docs describe the recipe."""
    import torch
    import torch.nn.functional as F
    from transformers import AutoModel, AutoTokenizer, get_linear_schedule_with_warmup

    from lmkernel.models.resolve import resolve_model_path

    torch.manual_seed(seed)
    path = str(resolve_model_path(MODEL["name"]))
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path)

    def encode(texts):
        batch = tok(texts, padding=True, truncation=True, max_length=MAX_LENGTH, return_tensors="pt")
        hidden = model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).float()
        return F.normalize((hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9), dim=-1)

    def loss_fn(rows):
        a, b = encode([r[0] for r in rows]), encode([r[1] for r in rows])
        if dataset == "afqmc":  # in-batch negatives
            return F.cross_entropy(SCALE * a @ b.T, torch.arange(len(rows)))
        cos = (a * b).sum(-1) * SCALE
        labels = torch.tensor([r[2] for r in rows])
        diff = (cos[:, None] - cos[None, :]).masked_fill(~(labels[:, None] < labels[None, :]), float("-inf"))
        return torch.logsumexp(torch.cat([torch.zeros(1), diff.flatten()]), 0)

    steps = epochs * ((len(train) + batch_size - 1) // batch_size)
    opt = torch.optim.AdamW(model.parameters(), lr=MODEL["lr"])
    sched = get_linear_schedule_with_warmup(opt, int(WARMUP * steps), steps)
    rng = random.Random(seed)
    model.train()
    start = time.perf_counter()
    for _ in range(epochs):
        order = list(range(len(train)))
        rng.shuffle(order)
        for i in range(0, len(order), batch_size):
            loss = loss_fn([train[j] for j in order[i:i + batch_size]])
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            opt.zero_grad()
    seconds = time.perf_counter() - start
    model.eval()

    def embed(texts):
        with torch.no_grad():
            return torch.cat([encode(texts[i:i + 64]) for i in range(0, len(texts), 64)]).numpy()

    return embed, {"samples_per_s": round(epochs * len(train) / seconds, 1), "train_s": round(seconds, 1),
                   "precision": "fp32"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", choices=sorted(READERS), default="stsb")
    ap.add_argument("--train-rows", type=int, default=2000, help="first N training rows (0: all)")
    ap.add_argument("--dev-rows", type=int, default=0, help="first N dev rows (0: all)")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--only", default="before,lmkernel,baseline")
    ap.add_argument("--model", default="minilm", help="the encoder both systems start from: an alias or a model "
                    "folder (e.g. runs/minilm-zh/model from lmkernel pretrain examples/zh/minilm-zh.yaml)")
    ap.add_argument("--keep", type=Path, default=None, help="write lmkernel's run here (e.g. for bench/retrieval.py "
                    "--embedder) instead of a temporary folder")
    ap.add_argument("--lr", type=float, default=LR, help="learning rate of both systems")
    ap.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = ap.parse_args()
    MODEL.update(name=args.model, keep=args.keep, lr=args.lr)
    import torch

    from lmkernel.knowledge.embedder import load_embedder

    read, train_split, dev_split = READERS[args.dataset]
    train, dev = read(train_split), read(dev_split)
    if args.train_rows:
        train = train[:args.train_rows]
    if args.dev_rows:
        dev = dev[:args.dev_rows]
    only = args.only.split(",")
    results: dict = {"dataset": args.dataset, "model": args.model, "train_rows": len(train), "dev_rows": len(dev),
                     "epochs": args.epochs, "lr": args.lr,
                     "batch_size": args.batch_size, "cpu": torch.backends.cpu.get_cpu_capability(),
                     "threads": torch.get_num_threads(), "machine": platform.machine(),
                     "unknown_token_share_dev": unknown_share([t for r in dev for t in r[:2]])}
    print(json.dumps(results))
    if "before" in only:
        base = load_embedder(args.model, max_length=MAX_LENGTH)
        results["before"] = score(lambda t: base.embed(t, batch_size=64), dev, args.dataset)
        print("before", results["before"], flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        if "lmkernel" in only:
            embed, info = run_lmkernel(train, args.dataset, args.epochs, args.batch_size, Path(tmp), args.seed)
            results["lmkernel"] = info | score(embed, dev, args.dataset)
            print("lmkernel", results["lmkernel"], flush=True)
    if "baseline" in only:
        embed, info = run_baseline(train, args.dataset, args.epochs, args.batch_size, args.seed)
        results["baseline"] = info | score(embed, dev, args.dataset)
        print("baseline", results["baseline"], flush=True)
    if "lmkernel" in results and "baseline" in results:
        results["speed_ratio"] = round(results["lmkernel"]["samples_per_s"] / results["baseline"]["samples_per_s"], 2)
        print(f"lmkernel / baseline training samples/s: {results['speed_ratio']}x")
    print("cpu capability:", torch.backends.cpu.get_cpu_capability())
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
