"""Which libraries the knowledge index uses, measured: BM25 and dense search candidates at ≥10,000 chunks.

The choice written in docs/knowledge.md ("Why these libraries") comes from here.
  bm25   lmkernel's SciPy-sparse BM25 (knowledge/bm25.py) against bm25s and rank_bm25, on WikiText-2
         paragraphs cut to 500 characters, all given the same pre-tokenised terms: build time, query
         p50/p95 over 200 queries (20-word spans of other paragraphs), and the cost of adding 100 chunks
         (ours appends rows; bm25s and rank_bm25 have no incremental add, so they rebuild).
  dense  exact search (numpy ``V @ q`` + argpartition) against faiss IndexFlatIP (exact) and hnswlib HNSW
         (approximate, M 16, ef 64) on random unit vectors of MiniLM's size (384), at 10,000 and 100,000
         rows: build time, query p50/p95 at k 100, HNSW recall@10 against exact. Search time does not
         depend on the values, so random vectors are enough.
Threads are capped at --threads (2: the target machine).

    nice -n 5 .venv/bin/python bench/experiments/index_choice.py [--chunks 10000] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))


def pct(times: list[float]) -> str:
    ms = np.asarray(times) * 1e3
    return f"p50 {np.percentile(ms, 50):7.2f} ms  p95 {np.percentile(ms, 95):7.2f} ms"


def corpus(n: int) -> list[str]:
    root = Path("/work/shared/data/wikitext2")
    paras = [p.strip() for p in (root / "wiki.train.tokens").read_text(encoding="utf-8").split("\n")
             if len(p.strip()) > 200 and not p.strip().startswith("=")]
    return [p[i:i + 500] for p in paras for i in range(0, len(p), 500)][:n]


def bench_bm25(texts: list[str], queries: list[str]) -> None:
    import bm25s
    from rank_bm25 import BM25Okapi

    from lmkernel.knowledge.bm25 import BM25, tokenize

    toks = [tokenize(t) for t in texts]
    qtoks = [tokenize(q) for q in queries]
    extra = texts[:100]

    t = time.perf_counter()
    ours = BM25()
    ours.add(texts)
    ours.weights()
    build = time.perf_counter() - t
    times = []
    for q in queries:
        t = time.perf_counter()
        s = ours.scores(q)
        np.argpartition(-s, 100)[:100]
        times.append(time.perf_counter() - t)
    t = time.perf_counter()
    ours.add(extra)
    ours.weights()
    add = time.perf_counter() - t
    print(f"ours (scipy)  build {build:6.2f} s  query {pct(times)}  add 100: {add * 1e3:7.1f} ms (incremental; "
          "includes tokenising)")

    t = time.perf_counter()
    model = bm25s.BM25(k1=1.5, b=0.75)
    model.index(toks, show_progress=False)
    build = time.perf_counter() - t
    times = []
    for q in qtoks:
        t = time.perf_counter()
        model.retrieve([q], k=100, show_progress=False, n_threads=1)
        times.append(time.perf_counter() - t)
    t = time.perf_counter()
    bm25s.BM25().index(toks + toks[:100], show_progress=False)
    print(f"bm25s         build {build:6.2f} s  query {pct(times)}  add 100: {(time.perf_counter() - t) * 1e3:7.1f} ms "
          "(full rebuild)")

    t = time.perf_counter()
    rb = BM25Okapi(toks)
    build = time.perf_counter() - t
    times = []
    for q in qtoks[:50]:
        t = time.perf_counter()
        s = rb.get_scores(q)
        np.argpartition(-s, 100)[:100]
        times.append(time.perf_counter() - t)
    print(f"rank_bm25     build {build:6.2f} s  query {pct(times)}  (50 queries; no incremental add)")


def bench_dense(rows: int, dim: int = 384, k: int = 100) -> None:
    import faiss
    import hnswlib

    rng = np.random.default_rng(0)
    vecs = rng.standard_normal((rows, dim)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    queries = vecs[rng.choice(rows, 200, replace=False)] + 0.1 * rng.standard_normal((200, dim)).astype(np.float32)
    exact_top = []
    times = []
    for q in queries:
        t = time.perf_counter()
        s = vecs @ q
        idx = np.argpartition(-s, k)[:k]
        idx = idx[np.argsort(-s[idx])]
        times.append(time.perf_counter() - t)
        exact_top.append(idx[:10])
    print(f"{rows:>7} rows  numpy exact   build    0.00 s  query {pct(times)}")

    t = time.perf_counter()
    flat = faiss.IndexFlatIP(dim)
    flat.add(vecs)
    build = time.perf_counter() - t
    times = []
    for q in queries:
        t = time.perf_counter()
        flat.search(q[None], k)
        times.append(time.perf_counter() - t)
    print(f"{rows:>7} rows  faiss flat    build {build:7.2f} s  query {pct(times)}")

    t = time.perf_counter()
    hnsw = hnswlib.Index(space="ip", dim=dim)
    hnsw.init_index(max_elements=rows, M=16, ef_construction=100)
    hnsw.add_items(vecs, np.arange(rows))
    hnsw.set_ef(max(64, k))
    build = time.perf_counter() - t
    times, hits = [], 0
    for q, want in zip(queries, exact_top):
        t = time.perf_counter()
        labels, _ = hnsw.knn_query(q[None], k)
        times.append(time.perf_counter() - t)
        hits += len(set(labels[0][:10].tolist()) & set(want.tolist()))
    print(f"{rows:>7} rows  hnswlib       build {build:7.2f} s  query {pct(times)}  recall@10 {hits / 2000:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chunks", type=int, default=10000)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    import faiss
    import torch

    faiss.omp_set_num_threads(args.threads)
    print(f"cpu capability: {torch.backends.cpu.get_cpu_capability()}, threads {args.threads}")
    texts = corpus(args.chunks + 200)
    queries = [" ".join(t.split()[20:40]) for t in texts[args.chunks:]]
    texts = texts[:args.chunks]
    print(f"BM25 over {len(texts)} chunks, {len(queries)} queries")
    bench_bm25(texts, queries)
    for rows in (args.chunks, 10 * args.chunks):
        bench_dense(rows)


if __name__ == "__main__":
    main()
