"""The knowledge index: build, open, search (BM25, dense, or both fused), add and delete documents.

Search over an empty index returns an empty list; a query embedded by another model than the index's is
refused (``LmkError`` naming both). Updates write a new generation (see ``store``), so an open ``Index``
keeps answering from the one it loaded until ``refresh()``.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import LmkError
from . import store
from .bm25 import BM25
from .chunking import CHUNK_CHARS, OVERLAP, Chunk, chunk_document
from .documents import Skip, read_documents
from .embedder import Embedder, load_embedder, token_estimate
from .ranking import DEPTH, RRF_K, filter_mask, rrf, top
from .settings import choose_model, fusion_weights, languages

MODES = ("hybrid", "bm25", "dense")
FEW_QUERIES = 4  # up to this many queries are embedded on one thread (see _one_thread)


@dataclass
class Hit:
    """One search result (see docs/knowledge.md for what each score means)."""

    text: str
    score: float
    source: str
    chunk_id: str
    doc_id: str
    meta: dict = field(default_factory=dict)
    dense: float | None = None
    bm25: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {"text": self.text, "score": self.score, "source": self.source, "chunk_id": self.chunk_id,
                "doc_id": self.doc_id, "meta": self.meta}


@dataclass
class IndexStats:
    """What a build or an add did."""

    path: Path
    documents: int
    chunks: int
    embedded: int
    seconds: float
    generation: str
    skipped: list[Skip] = field(default_factory=list)
    replaced: int = 0
    total_chunks: int = 0

    @property
    def chunks_per_s(self) -> float:
        return self.embedded / self.seconds if self.seconds > 0 else 0.0


_BLAS = None  # a threadpoolctl controller, made once: building one scans the loaded libraries


@contextlib.contextmanager
def _one_thread(active: bool):
    """Run a few short queries on one thread (torch and BLAS): splitting a ten-token forward pass or one
    matrix-vector product across cores saves little, and when the cores are busy (a server, other jobs)
    waiting for the second one costs several times the work itself (docs/knowledge.md, "Latency")."""
    global _BLAS
    if not active:
        yield
        return
    import torch
    from threadpoolctl import ThreadpoolController

    _BLAS = _BLAS or ThreadpoolController()
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with _BLAS.limit(limits=1, user_api="blas"):
            yield
    finally:
        torch.set_num_threads(before)


def _as_embedder(model: str | Path | Embedder | None, max_length: int | None = None) -> Embedder:
    """``model`` as an Embedder; ``max_length``: the one an index recorded, so chunks added later are cut alike."""
    if isinstance(model, Embedder):
        return model
    return load_embedder(None if model is None else str(model), max_length=max_length)


def _embed(embedder: Embedder, texts: list[str], progress: bool, batch: int = 256) -> np.ndarray:
    """Vectors for ``texts``, embedded shortest first in slices (so batches pad little across the whole
    set, not just within a slice), with a progress bar on long builds."""
    from tqdm.auto import tqdm

    out = np.zeros((len(texts), embedder.dim), dtype=np.float32)
    order = np.argsort([token_estimate(t) for t in texts], kind="stable")
    with tqdm(total=len(texts), desc="embedding", unit="chunk", disable=not progress or len(texts) < batch) as bar:
        for i in range(0, len(texts), batch):
            idx = order[i:i + batch]
            out[idx] = embedder.embed([texts[j] for j in idx], batch_size=32)
            bar.update(len(idx))
    return out


def _chunks(docs, chunk_chars: int, overlap: int) -> list[Chunk]:
    if chunk_chars < 20 or not 0 <= overlap < chunk_chars:
        raise LmkError(f"chunk size {chunk_chars} with overlap {overlap} is not usable",
                       where="--chunk-chars/--overlap",
                       fix="use a chunk size of at least 20 characters and an overlap below it")
    return [c for d in docs for c in chunk_document(d, chunk_chars, overlap)]


def build_index(paths: list[str | Path], out: str | Path, model: str | Path | Embedder | None = None, *,
                chunk_chars: int = CHUNK_CHARS, overlap: int = OVERLAP, text_field: str = "text",
                id_field: str = "id", on_bad: str = "skip", progress: bool = True) -> IndexStats:
    """Read, chunk, embed and index the documents under ``paths`` into a new index at ``out`` (an
    existing index there is replaced, atomically). ``model`` None picks one by the documents' language."""
    start = time.perf_counter()
    out = Path(out)
    if out.is_dir() and any(p.name != ".lock" for p in out.iterdir()) and not (out / store.POINTER).is_file():
        raise LmkError(f"{out} is a folder that is not an index; building there would mix the index with its files",
                       where="--out", fix="give a new folder (or an existing index, which is replaced)")
    docs, skipped = read_documents(paths, text_field, id_field, on_bad)
    if not docs:
        raise LmkError(f"no document to index in {', '.join(map(str, paths))} ({len(skipped)} input(s) skipped)",
                       where=skipped[0].render() if skipped else None,
                       fix="give .txt/.md/.jsonl/.csv files with text (see `lmkernel index build --help`)")
    chunks = _chunks(docs, chunk_chars, overlap)
    chosen, because = choose_model([d.text for d in docs[:200]]) if model is None else (str(model), "given")
    embedder = _as_embedder(model if model is not None else chosen)
    vectors = _embed(embedder, [c.text for c in chunks], progress)
    bm25 = BM25()
    bm25.add([c.text for c in chunks])
    manifest = {
        "format": store.FORMAT, "version": store.VERSION, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "embedder": {**embedder.identity, "chosen_because": because},
        "settings": {"chunk_chars": chunk_chars, "overlap": overlap, "text_field": text_field, "id_field": id_field,
                     "on_bad": on_bad, "bm25": {"k1": 1.5, "b": 0.75}, "rrf_k": RRF_K},
        "languages": languages([c.text for c in chunks]),
        "counts": {"documents": len(docs), "chunks": len(chunks)},
    }
    snap = store.Snapshot("", manifest, chunks, vectors, bm25)
    with store.writer_lock(out):
        gen = store.publish(out, snap)
    return IndexStats(Path(out), len(docs), len(chunks), len(chunks), time.perf_counter() - start, gen, skipped,
                      total_chunks=len(chunks))


def open_index(path: str | Path, embedder: str | Path | Embedder | None = None) -> Index:
    """The index at ``path``, read-only. ``embedder`` (optional) is the model queries will be embedded
    with; it must be the index's own (checked on first dense search)."""
    return Index(Path(path), embedder)


class Index:
    """A loaded generation of an index, searched in memory."""

    def __init__(self, path: Path, embedder: str | Path | Embedder | None = None, snap: store.Snapshot | None = None):
        self.path = path
        self._given = embedder
        self._embedder: Embedder | None = None
        self._snap = snap if snap is not None else store.load(path)

    @property
    def generation(self) -> str:
        return self._snap.generation

    @property
    def manifest(self) -> dict[str, Any]:
        return self._snap.manifest

    @property
    def chunks(self) -> list[Chunk]:
        return self._snap.chunks

    def __len__(self) -> int:
        return len(self._snap.chunks)

    def refresh(self) -> bool:
        """Reload if a writer published a new generation since; True when it did."""
        if store.current(self.path) == self._snap.generation:
            return False
        self._snap = store.load(self.path)
        return True

    @property
    def embedder(self) -> Embedder:
        """The model queries are embedded with, checked against the one that built the index."""
        if self._embedder is None:
            built = self.manifest["embedder"]
            emb = _as_embedder(self._given if self._given is not None else built["model"], built.get("max_length"))
            if not emb.matches(built):
                raise LmkError(f"this index was built with the embedding model {built['model']!r}, and the query "
                               f"model {emb.ref!r} makes different vectors", where=str(self.path),
                               fix=f"query with {built['model']!r}, or rebuild the index with {emb.ref!r}")
            self._embedder = emb
        return self._embedder

    def info(self) -> dict[str, Any]:
        """What the index holds and how it was built."""
        m = self.manifest
        emb = {k: v for k, v in m["embedder"].items() if k != "probe"}
        return {"path": str(self.path), "generation": self.generation, "created": m.get("created"),
                "updated": m.get("updated"), "model": emb, "counts": m["counts"], "languages": m.get("languages"),
                "settings": m["settings"], "format": f"{m['format']} v{m['version']}"}

    def search(self, query: str, k: int = 5, filters: dict | None = None, mode: str = "hybrid") -> list[Hit]:
        """The ``k`` best chunks for ``query`` among those passing ``filters``."""
        return self.search_many([query], k, filters, mode)[0]

    def search_many(self, queries: list[str], k: int = 5, filters: dict | None = None, mode: str = "hybrid", *,
                    query_vectors: np.ndarray | None = None,
                    weights: tuple[float, float] | None = None) -> list[list[Hit]]:
        """``search`` for many queries, embedding them in one batch (or using ``query_vectors``, made by
        this index's embedder). ``weights`` (BM25, dense) overrides the fusion weights chosen per language."""
        if mode not in MODES:
            raise LmkError(f"unknown search mode {mode!r}", where="--mode", fix=f"use one of {', '.join(MODES)}")
        if k < 1:
            raise LmkError(f"k must be at least 1, not {k}", where="--k")
        if not len(self) or not queries:
            return [[] for _ in queries]
        mask = filter_mask(self.chunks, filters)
        with _one_thread(len(queries) <= FEW_QUERIES):
            qvecs = query_vectors
            if qvecs is None and mode != "bm25":
                qvecs = self.embedder.embed(list(queries))
            return [self._rank(q, None if mode == "bm25" else qvecs[i], k, mask, mode, weights)
                    for i, q in enumerate(queries)]

    def _rank(self, query: str, qvec: np.ndarray | None, k: int, mask: np.ndarray | None, mode: str,
              weights: tuple[float, float] | None = None) -> list[Hit]:
        dense = self._snap.vectors @ qvec if qvec is not None else None
        lexical = self._snap.bm25.scores(query) if mode != "dense" else None
        if mode == "dense":
            order, fused = top(dense, k, mask), None
        elif mode == "bm25":
            order, fused = top(lexical, k, mask, positive=True), None
        else:
            w_bm25, w_dense = weights or fusion_weights(query, self.manifest)
            depth = max(DEPTH, k)
            fused = rrf([top(lexical, depth, mask, positive=True), top(dense, depth, mask)], [w_bm25, w_dense])
            order = sorted(fused, key=lambda i: (-fused[i], i))[:k]
        hits = []
        for i in order:
            c = self.chunks[i]
            score = fused[i] if fused is not None else float((dense if mode == "dense" else lexical)[i])
            hits.append(Hit(c.text, float(score), c.source, c.chunk_id, c.doc_id, c.meta,
                            None if dense is None else float(dense[i]), None if lexical is None else float(lexical[i])))
        return hits


def add_documents(path: str | Path, paths: list[str | Path], *, text_field: str | None = None,
                  id_field: str | None = None, on_bad: str | None = None, progress: bool = True) -> IndexStats:
    """Add documents to an index, embedding only their chunks; a document whose id is already indexed
    replaces the old one. Readers see the old index or the new, never a mix."""
    start = time.perf_counter()
    path = Path(path)
    with store.writer_lock(path):
        snap = store.load(path)
        s = snap.manifest["settings"]
        docs, skipped = read_documents(paths, text_field or s["text_field"], id_field or s["id_field"],
                                       on_bad or s["on_bad"])
        new = _chunks(docs, s["chunk_chars"], s["overlap"])
        dim = int(snap.manifest["embedder"]["dim"])
        vectors = (_embed(Index(path, snap=snap).embedder, [c.text for c in new], progress) if new
                   else np.zeros((0, dim), dtype=np.float32))
        replaced_ids = {d.doc_id for d in docs} & {c.doc_id for c in snap.chunks}
        _drop(snap, replaced_ids)
        snap.bm25.add([c.text for c in new])
        snap.chunks.extend(new)
        snap.vectors = np.concatenate([snap.vectors, vectors]) if len(snap.vectors) else vectors
        _touch(snap, docs_delta=len(docs) - len(replaced_ids))
        gen = store.publish(path, snap)
    return IndexStats(path, len(docs), len(new), len(new), time.perf_counter() - start, gen, skipped,
                      len(replaced_ids), len(snap.chunks))


def _drop(snap: store.Snapshot, doc_ids: set[str]) -> int:
    """Remove the chunks of ``doc_ids`` from ``snap`` in place; returns how many chunks went."""
    keep = np.array([c.doc_id not in doc_ids for c in snap.chunks], dtype=bool)
    if keep.all():
        return 0
    snap.chunks = [c for c, kept in zip(snap.chunks, keep) if kept]
    snap.vectors = snap.vectors[keep]
    snap.bm25.keep(keep)
    return int((~keep).sum())


def _touch(snap: store.Snapshot, docs_delta: int) -> None:
    m = snap.manifest
    m["counts"] = {"documents": m["counts"]["documents"] + docs_delta, "chunks": len(snap.chunks)}
    m["updated"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    m["languages"] = languages([c.text for c in snap.chunks])


def delete_documents(path: str | Path, doc_ids: list[str]) -> int:
    """Remove documents by id (nothing is re-embedded); returns how many were found and removed."""
    path = Path(path)
    with store.writer_lock(path):
        snap = store.load(path)
        present = set(doc_ids) & {c.doc_id for c in snap.chunks}
        if not present:
            return 0
        _drop(snap, present)
        _touch(snap, docs_delta=-len(present))
        store.publish(path, snap)
    return len(present)
