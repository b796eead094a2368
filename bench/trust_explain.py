"""Explanations on the real MiniLM: latency per 128-token text, faithfulness, planted-trigger recovery.

    nice -n 5 .venv/bin/python bench/trust_explain.py [--part all|latency|quality] [--train-rows 400]

1. Trains a small lmkernel run (MiniLM, full fine-tuning) on a planted-trigger task: SST-2 dev sentence
   fragments (English) and ChnSentiCorp fragments (Chinese) as fillers, with one trigger word planted
   ("cobalt"/"中国" -> label a, "saffron"/"日本" -> label b, none -> label c).
2. Trigger recovery: on held-out texts with a trigger, the top-scored word against the planted one
   (F1 over texts: precision = recall with one trigger and one top word), English and Chinese.
3. Faithfulness: mean comprehensiveness of the top 20 % of words against random words (ratio).
4. Latency: p50/p95 of ``explain`` on SST-2 dev text cut to 128 tokens, attribution only and with the
   faithfulness passes; the baseline is captum's LayerIntegratedGradients with its defaults (50 steps)
   on the same model, texts and label. Prints the ratio and torch's CPU capability.
"""

from __future__ import annotations

import argparse
import csv
import os
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
DATA = REPO.parent / "shared" / "data"
CPU: list[list[float]] = []  # CPU seconds per text of each latency() / baseline() call, in call order
TRIGGERS = {"a": ("cobalt", "中国"), "b": ("saffron", "日本")}  # MiniLM's vocabulary has these Han characters


def _fillers() -> tuple[list[str], list[str]]:
    with open(DATA / "sst2" / "dev.tsv", encoding="utf-8") as fh:
        en = [r["sentence"].strip() for r in csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)]
    with open(DATA / "chnsenticorp" / "dev.tsv", encoding="utf-8") as fh:
        zh = [r["text_a"].strip() for r in csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)]
    return en, zh


def planted(n: int, seed: int, en: list[str], zh: list[str]) -> list[tuple[str, str, str | None, bool]]:
    """(text, label, trigger, chinese) rows: a filler fragment with at most one trigger planted."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = rng.choice(["a", "b", "c"])
        chinese = i % 2 == 1
        if chinese:
            src = rng.choice(zh)
            start = rng.randrange(max(len(src) - 20, 1))
            text = src[start:start + rng.randint(10, 20)]
            trigger = TRIGGERS[label][1] if label != "c" else None
            cut = rng.randint(0, len(text))
            text = text[:cut] + (trigger or "") + text[cut:]
        else:
            words = rng.choice(en).split()[:rng.randint(6, 14)]
            trigger = TRIGGERS[label][0] if label != "c" else None
            if trigger:
                words.insert(rng.randint(0, len(words)), trigger)
            text = " ".join(words)
        rows.append((text, label, trigger, chinese))
    return rows


def train(rows, root: Path):
    import lmkernel

    for name, part in (("train", rows[:-60]), ("dev", rows[-60:])):
        with open(root / f"{name}.csv", "w", newline="", encoding="utf-8") as fh:
            csv.writer(fh).writerows([("text", "label")] + [(t, lab) for t, lab, _, _ in part])
    spec = root / "spec.yaml"
    spec.write_text(f"""task: {{type: classification}}
data: {{train: {root / 'train.csv'}, validation: {root / 'dev.csv'}, max_length: 48}}
model: {{name: minilm}}
tuning: {{method: full}}
train: {{epochs: 2, batch_size: 16, lr: 2e-4, log_every: 100}}
output: {{dir: {root / 'run'}}}
seed: 0
""", encoding="utf-8")
    t = time.perf_counter()
    result = lmkernel.run(spec, final_eval=False, progress=False)
    print(f"trained the planted-trigger run in {time.perf_counter() - t:.0f} s: "
          f"validation accuracy {result.metrics['validation']['accuracy']:.3f}")
    return lmkernel.load(result.run_dir)


def recovery(handle, rows, steps: int) -> dict[str, float]:
    from lmkernel.trust.explain import explain

    out = {}
    for lang, chinese in (("en", False), ("zh", True)):
        test = [r for r in rows if r[2] and r[3] == chinese]
        expl = explain(handle, [t for t, _, _, _ in test], n_steps=steps)
        hits = sum(max(e["words"], key=lambda w: w["score"])["word"] == trig for e, (_, _, trig, _) in zip(expl, test))
        out[f"trigger_f1_{lang}"] = hits / len(test)
        out[f"n_{lang}"] = len(test)
        out[f"comp_{lang}"] = statistics.mean(e["comprehensiveness"] for e in expl)
        out[f"comp_random_{lang}"] = statistics.mean(e["comprehensiveness_random"] for e in expl)
    return out


def long_texts(tokenizer, en: list[str], n: int) -> list[str]:
    """SST-2 dev sentences joined until each text reaches 128 tokens, cut at the last whole word inside."""
    texts, i = [], 0
    while len(texts) < n:
        words: list[str] = []
        while len(tokenizer(" ".join(words))["input_ids"]) < 128:
            words += en[i % len(en)].split()
            i += 1
        while len(tokenizer(" ".join(words))["input_ids"]) > 128:
            words.pop()
        texts.append(" ".join(words))
    return texts


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(q * (len(xs) - 1)))] * 1000


def latency(handle, texts: list[str], **options) -> list[float]:
    from lmkernel.trust.explain import explain

    explain(handle, texts[0], **options)  # warm-up
    times, cpu = [], []
    for t in texts:
        start, start_cpu = time.perf_counter(), time.process_time()
        explain(handle, t, **options)
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    CPU.append(cpu)
    return times


def baseline(handle, texts: list[str]) -> list[float]:
    """captum LayerIntegratedGradients, default settings, toward the predicted label."""
    import torch
    from captum.attr import LayerIntegratedGradients

    model, tok = handle.model, handle.tokenizer

    def forward(ids):
        return torch.softmax(model(input_ids=ids).logits, -1)

    lig = LayerIntegratedGradients(forward, model.get_input_embeddings())
    times, cpu = [], []
    for t in texts:
        start, start_cpu = time.perf_counter(), time.process_time()
        ids = torch.tensor([tok(t)["input_ids"]])
        with torch.no_grad():
            label = int(forward(ids).argmax())
        lig.attribute(ids, target=label)
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    CPU.append(cpu)
    return times


def _latency_part(handle, en: list[str], n: int, n_base: int, steps: int) -> None:
    import torch

    texts = long_texts(handle.tokenizer, en, n)
    ours = latency(handle, texts, max_length=128, n_steps=steps)
    bare = latency(handle, texts, max_length=128, n_steps=steps, faithful=False)
    base = baseline(handle, texts[:n_base])
    p50, b50 = _pct(ours, 0.5), _pct(base, 0.5)
    print(f"cpu capability: {torch.backends.cpu.get_cpu_capability()}, torch threads {torch.get_num_threads()}")
    print(f"latency per 128-token text, explain (IG {steps} steps + faithfulness): p50 {p50:.0f} ms, "
          f"p95 {_pct(ours, 0.95):.0f} ms over {len(ours)} texts")
    print(f"latency, attribution only (no faithfulness): p50 {_pct(bare, 0.5):.0f} ms, p95 {_pct(bare, 0.95):.0f} ms")
    print(f"baseline captum LayerIntegratedGradients defaults: p50 {b50:.0f} ms over {len(base)} texts; "
          f"ratio {b50 / p50:.1f}x (attribution only {b50 / _pct(bare, 0.5):.1f}x)")
    c_ours, c_bare, c_base = (_pct(c, 0.5) for c in CPU[-3:])  # CPU time: what a busy machine distorts least
    print(f"CPU time per text (all threads), p50: explain {c_ours:.0f} ms, attribution only {c_bare:.0f} ms, "
          f"baseline {c_base:.0f} ms; ratio {c_base / c_ours:.1f}x ({c_base / c_bare:.1f}x)", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train-rows", type=int, default=400)
    ap.add_argument("--test-rows", type=int, default=90)
    ap.add_argument("--latency-texts", type=int, default=10)
    ap.add_argument("--baseline-texts", type=int, default=2)
    ap.add_argument("--part", choices=["all", "latency", "quality"], default="all")
    ap.add_argument("--steps", type=int, default=4, help="integration points of lmkernel's ig")
    args = ap.parse_args()
    en, zh = _fillers()
    if args.part in ("all", "latency"):  # an untrained head costs the same as a trained one
        from lmkernel.artifact import Model
        from lmkernel.tasks import get_task

        task = get_task("classification")
        from lmkernel.models.resolve import load_tokenizer, resolve_model_path

        path = resolve_model_path("minilm")
        model = task.build_model(path, ["a", "b", "c"]).eval()
        card = {"task": "classification", "labels": ["a", "b", "c"], "max_length": 128}
        _latency_part(Model(model, load_tokenizer(path), task, card, path), en, args.latency_texts,
                      args.baseline_texts, args.steps)
    if args.part in ("all", "quality"):
        rows = planted(args.train_rows + args.test_rows, 0, en, zh)
        with tempfile.TemporaryDirectory() as tmp:
            handle = train(rows[:args.train_rows], Path(tmp))
            rec = recovery(handle, rows[args.train_rows:], args.steps)
        for lang in ("en", "zh"):
            ratio = rec[f"comp_{lang}"] / max(rec[f"comp_random_{lang}"], 1e-9)
            print(f"{lang}: trigger recovery F1 {rec[f'trigger_f1_{lang}']:.3f} over {rec[f'n_{lang}']} texts; "
                  f"comprehensiveness {rec[f'comp_{lang}']:.3f} vs random {rec[f'comp_random_{lang}']:.3f} "
                  f"({ratio:.1f}x)", flush=True)


if __name__ == "__main__":
    main()
