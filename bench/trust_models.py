"""Score the trust example models on their held-out split, against a TF-IDF + logistic-regression baseline.

    python bench/trust_models.py --run runs/offensive-en --positive 0,1
    python bench/trust_models.py --run runs/finance-en

For each run: the held-out split its own spec defines (files or the seeded hold-out, read by
lmkernel's data reader, so it is exactly the rows the run was scored on), accuracy and macro F1, and,
with --positive, precision/recall/F1 of "flagged" (the summed probability of those labels at or above
each threshold): what a guard with that threshold would catch. The baseline trains scikit-learn's
TF-IDF (word 1-2-grams, or character 1-3-grams for Chinese) + logistic regression on the same training
rows. Also the p50 latency of one text at batch 1 (what a guard adds to a request).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def held_out(run: Path, split: str):
    """(train, held-out, labels) as the run read them: (text, label) pairs."""
    from lmkernel.data.read import read_data
    from lmkernel.spec import load_spec
    from lmkernel.tasks import get_task

    spec = load_spec(run / "spec.yaml")
    splits, labels = read_data(get_task(spec.task.type), spec)
    pairs = {k: [(e.text, e.label) for e in v.examples] for k, v in splits.items()}
    return pairs["train"], pairs[split], labels


def scores(gold: list[str], pred: list[str]) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score

    return {"accuracy": round(accuracy_score(gold, pred), 4),
            "macro_f1": round(f1_score(gold, pred, average="macro"), 4)}


def flagged(gold: list[str], prob: list[float], positive: set[str], thresholds: list[float]) -> list[dict]:
    from sklearn.metrics import precision_recall_fscore_support

    truth = [g in positive for g in gold]
    rows = []
    for t in thresholds:
        p, r, f, _ = precision_recall_fscore_support(truth, [x >= t for x in prob], average="binary",
                                                     zero_division=0)
        clean = [x for x, y in zip(prob, truth) if not y]
        rows.append({"threshold": t, "precision": round(p, 4), "recall": round(r, 4), "f1": round(f, 4),
                     "false_positive_rate": round(sum(x >= t for x in clean) / max(1, len(clean)), 4),
                     "flagged_share": round(sum(x >= t for x in prob) / len(prob), 4)})
    return rows


def baseline(train, test, chinese: bool) -> list[str]:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    vec = (TfidfVectorizer(analyzer="char", ngram_range=(1, 3), min_df=2, sublinear_tf=True) if chinese
           else TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True))
    x = vec.fit_transform([t for t, _ in train])
    clf = LogisticRegression(max_iter=2000, C=4.0).fit(x, [y for _, y in train])
    return list(clf.predict(vec.transform([t for t, _ in test])))


def benign_flags(model, path: Path, positive: set[str], thresholds: list[float]) -> dict[str, float]:
    """Share of a file of harmless texts (JSONL with "text") flagged at each threshold: the false alarms
    a guard raises on the traffic it will actually see."""
    texts = [json.loads(line)["text"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    prob = [sum(r["probabilities"][k] for k in positive) for r in model.predict(texts, batch_size=64)]
    return {"file": str(path), "n": len(texts)} | {str(t): round(sum(x >= t for x in prob) / len(prob), 4)
                                                  for t in thresholds}


def bench_run(run: Path, split: str, positive: set[str], thresholds: list[float],
              benign: Path | None = None) -> dict:
    import lmkernel

    train, test, labels = held_out(run, split)
    texts, gold = [t for t, _ in test], [y for _, y in test]
    model = lmkernel.load(run)
    t0 = time.perf_counter()
    rows = model.predict(texts, batch_size=64)
    per_s = len(texts) / (time.perf_counter() - t0)
    lat = []
    for text in texts[:100]:
        t1 = time.perf_counter()
        model.predict(text)
        lat.append(1000 * (time.perf_counter() - t1))
    chinese = sum("\u4e00" <= c <= "\u9fff" for t in texts[:200] for c in t) > 200
    t0 = time.perf_counter()
    base = baseline(train, test, chinese)
    out = {"run": str(run), "split": split, "n": len(texts), "labels": labels,
           "lmkernel": scores(gold, [r["label"] for r in rows]), "texts_per_s": round(per_s, 1),
           "p50_ms_batch1": round(sorted(lat)[len(lat) // 2], 1),
           "baseline_tfidf_lr": scores(gold, base), "baseline_s": round(time.perf_counter() - t0, 1)}
    if positive:
        prob = [sum(r["probabilities"][k] for k in positive) for r in rows]
        out["flagged"] = flagged(gold, prob, positive, thresholds)
        if benign is not None:
            out["benign_flagged_share"] = benign_flags(model, benign, positive, thresholds)
    return out


def main() -> None:
    import torch

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, action="append", required=True)
    ap.add_argument("--split", default="test")
    ap.add_argument("--positive", default="", help="labels that count as flagged, comma-separated")
    ap.add_argument("--thresholds", default="0.3,0.5,0.7,0.8,0.9")
    ap.add_argument("--benign", type=Path, help="JSONL of harmless texts: the share flagged at each threshold")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    positive = {p for p in args.positive.split(",") if p}
    thresholds = [float(t) for t in args.thresholds.split(",")]
    results = [bench_run(r, args.split, positive, thresholds, args.benign) for r in args.run]
    for r in results:
        r["cpu"] = torch.backends.cpu.get_cpu_capability()
    text = json.dumps(results, indent=1, ensure_ascii=False)
    print(text)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
