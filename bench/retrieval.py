"""Retrieval benchmark: lmkernel's index (BM25, dense, hybrid) against bm25s + sentence-transformers.

    nice -n 5 .venv/bin/python bench/retrieval.py [--embedder minilm|RUN] [--en-distractors 2500]
        [--zh-distractors 7000] [--zh-queries 1000] [--latency-queries 200] [--out bench/results/retrieval.json]

Work (one index holding both languages, ≥10,000 chunks):
  en  XQuAD English: 1,190 questions → their 240 paragraphs (SQuAD v1.1 dev), plus WikiText-2 (valid+test)
      paragraphs as distractors
  zh  CMRC 2018 dev: questions → their 848 contexts (--zh-queries of the 3,219, a fixed random sample),
      plus ChnSentiCorp reviews and AFQMC sentences as distractors
A question is answered when a chunk of its own paragraph is retrieved: recall@1, recall@5, MRR@10, each
  "contexts"  among the QA paragraphs only (a metadata filter kind=qa: the usual paragraph-retrieval task)
  "full"      among all ≥10,000 chunks, distractors included
Systems:
  lmkernel   ``build_index`` (chunks of 500 characters, Han characters counting twice) with the --embedder
             model, searched in modes bm25, dense and hybrid (reciprocal rank fusion, dense weighted by
             language: see knowledge/settings.py); the hybrid weight sweep for Chinese is printed too
  baseline   bm25s (its English tokenizer with stopwords; jieba words for Chinese) and sentence-transformers
             (``SentenceTransformer`` on the --embedder's model folder: mean pooling + normalisation) with exact
             numpy search, over the same chunks (dense: the QA paragraphs' chunks, "contexts" only)
Latency: ``Index.search`` end to end (query embedding included) on --latency-queries questions, p50/p95,
  against the baseline's encode + ``V @ q`` over a matrix of the same shape (the full index's vectors).
Build throughput: chunks indexed per second (reading, chunking, BM25 and embedding), against the
  baseline's bm25s index + sentence-transformers encode over the QA chunks.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

DATA = Path("/work/shared/data")


def xquad() -> tuple[list[str], list[tuple[str, int]]]:
    data = json.loads((DATA / "xquad" / "xquad.en.json").read_text(encoding="utf-8"))
    contexts, questions = [], []
    for article in data["data"]:
        for para in article["paragraphs"]:
            questions += [(qa["question"], len(contexts)) for qa in para["qas"]]
            contexts.append(para["context"])
    return contexts, questions


def cmrc() -> tuple[list[str], list[tuple[str, int]]]:
    data = json.loads((DATA / "cmrc2018" / "data" / "cmrc2018_dev.json").read_text(encoding="utf-8"))
    contexts, questions = [], []
    for item in data:
        questions += [(qa["query_text"], len(contexts)) for qa in item["qas"]]
        contexts.append(item["context_text"])
    return contexts, questions


def distractors(en: int, zh: int) -> tuple[list[str], list[str]]:
    wiki = []
    for split in ("valid", "test", "train"):
        text = (DATA / "wikitext2" / f"wiki.{split}.tokens").read_text(encoding="utf-8")
        wiki += [p.strip() for p in text.split("\n") if len(p.strip()) > 200 and not p.strip().startswith("=")]
        if len(wiki) >= en:
            break
    reviews = []
    for split in ("dev", "test", "train"):
        lines = (DATA / "chnsenticorp" / f"{split}.tsv").read_text(encoding="utf-8").splitlines()[1:]
        reviews += [line.split("\t")[-1] for line in lines if len(line.split("\t")[-1]) > 10]
    pairs = [json.loads(line) for line in (DATA / "afqmc" / "afqmc_public" / "train.json").read_text(
        encoding="utf-8").splitlines()]
    sentences = list(dict.fromkeys(s for p in pairs for s in (p["sentence1"], p["sentence2"])))
    half = zh // 3
    return wiki[:en], reviews[:half] + sentences[:zh - half]


def write_docs(path: Path, kind: str, by_lang: dict[str, list[str]]) -> Path:
    with open(path, "w", encoding="utf-8") as fh:
        for lang, texts in by_lang.items():
            for i, text in enumerate(texts):
                row = {"id": f"{lang}-{kind}-{i}", "text": text, "lang": lang, "kind": kind}
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


def pad_random(idx: Path, docs: Path) -> int:
    """Add the distractors with random unit vectors instead of embeddings (--distractor-vectors random):
    search time does not depend on the values, and embedding thousands of paragraphs on a shared 2-core
    machine takes longer than a benchmark run may. Their BM25 rows are real."""
    from lmkernel.knowledge import store
    from lmkernel.knowledge.chunking import chunk_document
    from lmkernel.knowledge.documents import read_documents

    snap = store.load(idx)
    s = snap.manifest["settings"]
    new = [c for d in read_documents([docs])[0] for c in chunk_document(d, s["chunk_chars"], s["overlap"])]
    rng = np.random.default_rng(0)
    vecs = rng.standard_normal((len(new), snap.vectors.shape[1])).astype(np.float32)
    snap.vectors = np.concatenate([snap.vectors, vecs / np.linalg.norm(vecs, axis=1, keepdims=True)])
    snap.bm25.add([c.text for c in new])
    snap.chunks.extend(new)
    snap.manifest["counts"]["chunks"] = len(snap.chunks)
    store.publish(idx, snap)
    return len(new)


def score(ranked: list[list[str]], gold: list[str]) -> dict[str, float]:
    """recall@1, recall@5 and MRR@10 of ranked doc-id lists (one per question) against the gold ids."""
    r1 = r5 = mrr = 0.0
    for docs, want in zip(ranked, gold):
        ranks = [i for i, d in enumerate(docs[:10], start=1) if d == want]
        r1 += bool(ranks) and ranks[0] == 1
        r5 += bool(ranks) and ranks[0] <= 5
        mrr += 1.0 / ranks[0] if ranks else 0.0
    n = max(len(gold), 1)
    return {"recall@1": r1 / n, "recall@5": r5 / n, "mrr@10": mrr / n}


def ours(index, questions, gold, qvecs, lang, sweep, full_dense: bool) -> dict:
    out = {}
    for scope, filters in (("contexts", {"kind": "qa", "lang": lang}), ("full", None)):
        for mode in ("bm25", "dense", "hybrid") if scope == "contexts" or full_dense else ("bm25",):
            hits = index.search_many(questions, k=10, filters=filters, mode=mode, query_vectors=qvecs)
            out[f"{scope}/{mode}"] = score([[h.doc_id for h in hs] for hs in hits], gold)
        for w in sweep if scope == "contexts" or full_dense else ():
            hits = index.search_many(questions, k=10, filters=filters, mode="hybrid", query_vectors=qvecs,
                                     weights=(1.0, w))
            out[f"{scope}/hybrid-dense{w}"] = score([[h.doc_id for h in hs] for hs in hits], gold)
    return out


def baseline(index, questions, gold, lang, model_path, max_length: int) -> dict:
    """bm25s and sentence-transformers over the same QA chunks (the "contexts" scope)."""
    import bm25s
    import jieba
    from sentence_transformers import SentenceTransformer

    chunks = [c for c in index.chunks if c.meta.get("kind") == "qa" and c.meta.get("lang") == lang]
    texts = [c.text for c in chunks]
    start = time.perf_counter()
    if lang == "zh":
        corpus_tok, query_tok = [jieba.lcut(t) for t in texts], [jieba.lcut(q) for q in questions]
    else:
        corpus_tok, query_tok = bm25s.tokenize(texts, stopwords="en", show_progress=False), None
    bm = bm25s.BM25(k1=1.5, b=0.75)
    bm.index(corpus_tok, show_progress=False)
    bm_build = time.perf_counter() - start
    if query_tok is None:
        query_tok = bm25s.tokenize(questions, stopwords="en", show_progress=False)
    res, _ = bm.retrieve(query_tok, k=10, show_progress=False)
    out = {"contexts/bm25s": score([[chunks[i].doc_id for i in row] for row in res], gold)}
    st = SentenceTransformer(model_path, device="cpu")
    st.max_seq_length = max_length
    start = time.perf_counter()
    vecs = st.encode(texts, batch_size=32, normalize_embeddings=True)
    embed_s = time.perf_counter() - start
    qv = st.encode(questions, batch_size=64, normalize_embeddings=True)
    top = np.argsort(-(qv @ vecs.T), axis=1)[:, :10]
    out["contexts/st-dense"] = score([[chunks[i].doc_id for i in row] for row in top], gold)
    seconds = bm_build + embed_s
    out["build"] = {"chunks": len(texts), "seconds": seconds, "chunks_per_s": len(texts) / seconds}
    return out, st


def _plain_search(st, matrix: np.ndarray, query: str) -> np.ndarray:
    scores = matrix @ st.encode([query], normalize_embeddings=True)[0]
    return np.argpartition(-scores, 5)[:5]


def _presearch(index, queries: list[str], qvecs: np.ndarray, i: int):
    return index.search_many([queries[i]], k=5, query_vectors=qvecs[i:i + 1])


def latency(fn, queries) -> dict[str, float]:
    times = []
    for q in queries:
        start = time.perf_counter()
        fn(q)
        times.append(time.perf_counter() - start)
    ms = np.asarray(times) * 1e3
    return {"p50_ms": float(np.percentile(ms, 50)), "p95_ms": float(np.percentile(ms, 95))}


def table(results: dict) -> None:
    for lang in ("en", "zh"):
        if not results[lang]:
            continue
        print(f"\n{lang}: {'system':34} recall@1 recall@5 mrr@10")
        for name, m in results[lang].items():
            if isinstance(m, dict) and "recall@5" in m:
                print(f"    {name:34} {m['recall@1']:.3f}    {m['recall@5']:.3f}    {m['mrr@10']:.3f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--embedder", default="minilm", help="model alias, encoder folder, embedding run or masked-LM "
                   "pretrain run (the baseline loads the same folder in sentence-transformers)")
    p.add_argument("--en-distractors", type=int, default=2500)
    p.add_argument("--zh-distractors", type=int, default=7000)
    p.add_argument("--zh-queries", type=int, default=1000)
    p.add_argument("--latency-queries", type=int, default=200)
    p.add_argument("--sweep", default="0.25,0.5,0.75", help="dense weights tried in the hybrid")
    p.add_argument("--no-baseline", action="store_true")
    p.add_argument("--distractor-vectors", choices=("real", "random"), default="real",
                   help="embed the distractors (real) or give them random unit vectors (random: the latency and "
                   "the BM25 figures stay real, dense/hybrid 'full' scores are then not reported)")
    p.add_argument("--contexts", type=int, default=0, help="keep only the first N paragraphs per language "
                   "(and their questions): a smoke test")
    p.add_argument("--threads", type=int, default=2, help="torch threads for embedding the corpus")
    p.add_argument("--max-length", type=int, default=256, help="tokens embedded per chunk, for lmkernel and the "
                   "baseline alike (a run trained on short pairs would otherwise cut chunks at its training length)")
    p.add_argument("--langs", default="en,zh", help="the languages whose questions are scored (the index holds "
                   "both either way): zh alone saves the English queries' time")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    import torch

    from lmkernel.knowledge.embedder import load_embedder
    from lmkernel.knowledge.index import add_documents, build_index, open_index
    from lmkernel.models.resolve import resolve_model_path

    torch.set_num_threads(args.threads)
    print(f"cpu capability: {torch.backends.cpu.get_cpu_capability()}, torch threads {torch.get_num_threads()}")
    en_ctx, en_q = xquad()
    zh_ctx, zh_q = cmrc()
    if args.contexts:
        en_ctx, zh_ctx = en_ctx[:args.contexts], zh_ctx[:args.contexts]
        en_q, zh_q = [q for q in en_q if q[1] < args.contexts], [q for q in zh_q if q[1] < args.contexts]
    zh_q = random.Random(0).sample(zh_q, min(args.zh_queries, len(zh_q)))
    en_dis, zh_dis = distractors(args.en_distractors, args.zh_distractors)
    results: dict = {"embedder": args.embedder, "max_length": args.max_length, "en": {}, "zh": {}}
    with tempfile.TemporaryDirectory() as tmp:
        idx = Path(tmp) / "idx"
        qa_docs = write_docs(Path(tmp) / "qa.jsonl", "qa", {"en": en_ctx, "zh": zh_ctx})
        embedder = load_embedder(args.embedder, max_length=args.max_length)
        stats = build_index([qa_docs], idx, embedder, progress=True)
        results["build"] = {"chunks": stats.chunks, "seconds": stats.seconds,
                            "chunks_per_s": stats.chunks / stats.seconds}
        print(f"built {stats.chunks} chunks in {stats.seconds:.0f}s ({stats.chunks / stats.seconds:.1f} chunks/s)")
        dis_docs = write_docs(Path(tmp) / "distractors.jsonl", "distractor", {"en": en_dis, "zh": zh_dis})
        if args.distractor_vectors == "real":
            add_documents(idx, [dis_docs])
        else:
            pad_random(idx, dis_docs)
        index = open_index(idx, embedder)
        results["index_chunks"] = len(index)
        print(f"index holds {len(index)} chunks")
        sweep = [float(w) for w in args.sweep.split(",") if w]
        st = None
        for lang, questions in [(lang, q) for lang, q in (("en", en_q), ("zh", zh_q)) if lang in args.langs]:
            texts, gold = [q for q, _ in questions], [f"{lang}-qa-{i}" for _, i in questions]
            start = time.perf_counter()
            qvecs = index.embedder.embed(texts)
            results[lang]["query_embed_per_s"] = len(texts) / (time.perf_counter() - start)
            results[lang].update(ours(index, texts, gold, qvecs, lang, sweep, args.distractor_vectors == "real"))
            if not args.no_baseline:  # an alias, an encoder folder or a run's model/ (sentence-transformers files)
                base, st = baseline(index, texts, gold, lang, str(resolve_model_path(args.embedder)),
                                    args.max_length)
                results[lang]["baseline_build"] = base.pop("build")
                results[lang].update(base)
            sample = texts[:args.latency_queries]
            for mode in ("bm25", "dense", "hybrid"):
                results[lang][f"latency/{mode}"] = latency(lambda q, m=mode: index.search(q, k=5, mode=m), sample)
            if st is not None:
                results[lang]["latency/baseline-dense"] = latency(partial(_plain_search, st, index._snap.vectors),
                                                                  sample)
            qv = index.embedder.embed(sample)
            results[lang]["latency/hybrid-without-query-embedding"] = latency(
                partial(_presearch, index, sample, qv), range(len(sample)))
            print(lang, json.dumps({k: v for k, v in results[lang].items() if "latency" in k}))
    table(results)
    print("\nbuild:", json.dumps(results["build"]), "baseline:",
          json.dumps({lang: results[lang].get("baseline_build") for lang in ("en", "zh")}))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
