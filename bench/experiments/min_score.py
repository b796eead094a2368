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
    ap.add_argument("--dump", help="Write each question's best cosine, best BM25 and answerability here (JSON).")
    ap.add_argument("--from-dump", help="Only print the tables of an earlier --dump.")
    args = ap.parse_args()
    if args.from_dump:
        report(json.loads(Path(args.from_dump).read_text(encoding="utf-8")), args.k)
        return
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
    from lmkernel.knowledge.bm25 import tokenize

    rows = [{"answerable": a, "found": any(x.doc_id == pid for x in h), "dense": best_score(h),
             "bm25": max((x.bm25 or 0.0 for x in h), default=0.0), "terms": len(tokenize(q))}
            for (q, pid, a), h in zip(questions, hits)]
    if args.dump:
        Path(args.dump).write_text(json.dumps(rows), encoding="utf-8")
    inside = np.array([r["answerable"] for r in rows])
    print(f"XQuAD {args.lang}, model {args.model}, k={args.k}: {len(docs)} paragraphs indexed, {inside.sum()} "
          f"answerable and {(~inside).sum()} unanswerable questions ({took:.0f} s, "
          f"cpu {torch.backends.cpu.get_cpu_capability()})")
    report(rows, args.k)


def report(rows: list[dict], k: int) -> None:
    """The recall and, per threshold on the best cosine and on the best BM25 score, what is kept and refused."""
    inside = np.array([r["answerable"] for r in rows])
    found = np.array([r["found"] for r in rows])
    print(f"recall@{k} of answerable questions: {found[inside].mean():.3f}")
    for key, cuts in (("dense", (0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6)),
                      ("bm25", (2, 4, 6, 8, 10, 12, 15))):
        score = np.array([r[key] for r in rows], dtype=float)
        print(f"\nbest {key}: answerable median {np.median(score[inside]):.3f}, unanswerable median "
              f"{np.median(score[~inside]):.3f}")
        print(f"| min {key} | answerable answered | with its paragraph retrieved | unanswerable refused |")
        print("|---|---|---|---|")
        for t in cuts:
            kept = score >= t
            print(f"| {t:g} | {kept[inside].mean():.3f} | {(kept & found)[inside].mean():.3f} | "
                  f"{(~kept)[~inside].mean():.3f} |")


if __name__ == "__main__":
    main()
