"""The index directory: immutable generations behind a pointer file, so readers never see a torn index.

Layout::

    IDX/CURRENT              the name of the live generation ("gen-000003"), replaced atomically
    IDX/gen-000003/          manifest.json, chunks.jsonl, vectors.npy (float32), bm25.safetensors
                             (the CSR term-frequency matrix), vocab.json (the BM25 terms in column order)
    IDX/.lock                writers hold it (flock), so two `index add` runs queue instead of racing

A writer builds a whole new generation in a temporary folder, renames it into place, then replaces
CURRENT; the previous generation stays (a reader may be loading it) and older ones are removed. Nothing
is pickled: JSON, ``.npy`` read with ``allow_pickle=False`` and safetensors.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import LmkError
from ..fsutil import atomic_write_text, fsync_tree
from .bm25 import BM25
from .chunking import Chunk

FORMAT = "lmkernel-index"
VERSION = 1
POINTER = "CURRENT"
KEEP = 2  # generations kept: the live one and the one before (a reader may still be loading it)


@dataclass
class Snapshot:
    """One generation, loaded: what search needs."""

    generation: str
    manifest: dict[str, Any]
    chunks: list[Chunk]
    vectors: np.ndarray  # [chunks, dim] float32 unit rows
    bm25: BM25


def current(root: Path) -> str:
    """The live generation's name; LmkError when ``root`` is not an index."""
    pointer = root / POINTER
    if not pointer.is_file():
        what = f"no index at {root}" if not root.exists() else f"{root} is not an lmkernel index (no {POINTER} file)"
        raise LmkError(what, where=str(root), fix="build one with `lmkernel index build DOCS... --out IDX`")
    return pointer.read_text(encoding="utf-8").strip()


def _load_generation(root: Path, gen: str) -> Snapshot:
    from safetensors.numpy import load_file
    from scipy import sparse

    folder = root / gen
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    if manifest.get("format") != FORMAT or int(manifest.get("version", 0)) > VERSION:
        raise LmkError(f"{root} holds an index of format {manifest.get('format')!r} v{manifest.get('version')}, "
                       f"this lmkernel reads {FORMAT} v{VERSION}", where=str(folder / "manifest.json"),
                       fix="rebuild the index with this version of lmkernel")
    with open(folder / "chunks.jsonl", encoding="utf-8") as fh:
        chunks = [Chunk(**json.loads(line)) for line in fh if line.strip()]
    vectors = np.load(folder / "vectors.npy", allow_pickle=False)
    arrays = load_file(str(folder / "bm25.safetensors"))
    vocab_list = json.loads((folder / "vocab.json").read_text(encoding="utf-8"))
    tf = sparse.csr_matrix((arrays["data"], arrays["indices"], arrays["indptr"]),
                           shape=(len(chunks), len(vocab_list)))
    if vectors.shape[0] != len(chunks) or int(manifest["counts"]["chunks"]) != len(chunks):
        raise ValueError("counts disagree")
    return Snapshot(gen, manifest, chunks, vectors, BM25({t: i for i, t in enumerate(vocab_list)}, tf))


def load(root: str | Path, attempts: int = 3) -> Snapshot:
    """The live generation. A writer may swap it while we read: then the files we wanted may be gone,
    and we read the new one instead."""
    root = Path(root)
    for attempt in range(attempts):
        gen = current(root)
        try:
            return _load_generation(root, gen)
        except (FileNotFoundError, ValueError, KeyError, json.JSONDecodeError, TypeError) as e:
            if current(root) != gen and attempt < attempts - 1:
                continue  # swapped under us: read the new one
            raise LmkError(f"the index at {root} is damaged ({type(e).__name__}: {e})", where=str(root / gen),
                           fix="rebuild it with `lmkernel index build`") from e
    raise AssertionError("unreachable")


def _write_generation(folder: Path, snap: Snapshot) -> None:
    from safetensors.numpy import save_file

    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text(json.dumps(snap.manifest, indent=2, ensure_ascii=False) + "\n",
                                          encoding="utf-8")
    with open(folder / "chunks.jsonl", "w", encoding="utf-8") as fh:
        for chunk in snap.chunks:
            fh.write(json.dumps(chunk.to_json(), ensure_ascii=False) + "\n")
    np.save(folder / "vectors.npy", np.ascontiguousarray(snap.vectors, dtype=np.float32), allow_pickle=False)
    tf = snap.bm25.tf.tocsr()
    save_file({"data": np.ascontiguousarray(tf.data, dtype=np.float32),
               "indices": np.ascontiguousarray(tf.indices, dtype=np.int64),
               "indptr": np.ascontiguousarray(tf.indptr, dtype=np.int64)}, str(folder / "bm25.safetensors"))
    vocab = sorted(snap.bm25.vocab, key=snap.bm25.vocab.__getitem__)
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")


def publish(root: str | Path, snap: Snapshot) -> str:
    """Write ``snap`` as the next generation and make it live; returns its name."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    pointer = root / POINTER
    last = int(pointer.read_text(encoding="utf-8").strip().split("-")[1]) if pointer.is_file() else 0
    gen = f"gen-{last + 1:06d}"
    tmp = root / f".tmp-{gen}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    snap.manifest["generation"] = gen
    _write_generation(tmp, snap)
    fsync_tree(tmp)
    os.replace(tmp, root / gen)
    atomic_write_text(pointer, gen + "\n")
    snap.generation = gen
    _collect(root, gen)
    return gen


def _collect(root: Path, live: str) -> None:
    """Remove generations older than the ``KEEP`` newest, and leftovers of crashed writers."""
    gens = sorted(p.name for p in root.glob("gen-*") if p.is_dir() and p.name <= live)
    for name in gens[:-KEEP]:
        shutil.rmtree(root / name, ignore_errors=True)
    for tmp in root.glob(".tmp-gen-*"):
        with contextlib.suppress(ValueError):
            if not _alive(int(tmp.name.rsplit("-", 1)[1])):
                shutil.rmtree(tmp, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def writer_lock(root: str | Path):
    """Hold the index's writer lock: a second writer waits for the first instead of losing its update."""
    import fcntl

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
