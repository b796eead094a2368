"""Where to put the "don't know" threshold of grounded answers (``--knowledge-min-score``, ``ask --min-score``).

XQuAD's 48 articles are split in two by article: the paragraphs of the even ones make the knowledge index,
so their questions have an answer in it and the odd articles' questions do not. For each question the
best dense cosine among its top passages (what ``knowledge.answer`` thresholds) is recorded; the table
shows, per threshold, the share of answerable questions still answered and of unanswerable ones refused,
and whether the answer's paragraph was among the passages (retrieval recall@k).

    PYTHONPATH=src nice -n 5 python bench/experiments/min_score.py [--lang en|zh] [--model minilm] [--k 4]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "xquad"


def load(lang: str) -> tuple[list[dict], list[tuple[str, str, bool]]]:
    """(documents of the even articles, [(question, paragraph id, answerable)])."""
    data = json.loads((DATA / f"xquad.{lang}.json").read_text(encoding="utf-8"))["data"]
    docs, questions = [], []
    for a, article in enumerate(data):
        for p, para in enumerate(article["paragraphs"]):
            pid = f"a{a}p{p}"
            if a % 2 == 0:
                docs.append({"id": pid, "text": para["context"]})
            questions += [(q["question"], pid, a % 2 == 0) for q in para["qas"]]
    return docs, questions


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lang", default="en")
    ap.add_argument("--model", default="minilm")
    ap.add_argument("--k", type=int, default=4)
    args = ap.parse_args()
    import torch

    from lmkernel.knowledge.answer import best_score
    from lmkernel.knowledge.index import build_index, open_index

    docs, questions = load(args.lang)
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "docs.jsonl"
        src.write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in docs), encoding="utf-8")
        start = time.perf_counter()
        build_index([src], Path(tmp) / "idx", args.model, progress=False)
        index = open_index(Path(tmp) / "idx")
        hits = index.search_many([q for q, _, _ in questions], k=args.k)
        took = time.perf_counter() - start
    best = np.array([best_score(h) for h in hits])
    inside = np.array([a for _, _, a in questions])
    found = np.array([any(h.doc_id == pid for h in hs) for hs, (_, pid, _) in zip(hits, questions)])
    print(f"XQuAD {args.lang}, model {args.model}, k={args.k}: {len(docs)} paragraphs indexed, {inside.sum()} "
          f"answerable and {(~inside).sum()} unanswerable questions ({took:.0f} s, "
          f"cpu {torch.backends.cpu.get_cpu_capability()})")
    print(f"recall@{args.k} of answerable questions: {found[inside].mean():.3f}")
    print(f"best cosine: answerable median {np.median(best[inside]):.3f}, unanswerable median "
          f"{np.median(best[~inside]):.3f}")
    print("| min score | answerable answered | with its paragraph retrieved | unanswerable refused |")
    print("|---|---|---|---|")
    for t in (0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6):
        kept = best >= t
        print(f"| {t:.2f} | {kept[inside].mean():.3f} | {(kept & found)[inside].mean():.3f} | "
              f"{(~kept)[~inside].mean():.3f} |")


if __name__ == "__main__":
    main()
