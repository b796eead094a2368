"""BM25 over a SciPy sparse term-frequency matrix, so chunks can be added and deleted without a rebuild.

Rows are chunks, columns are terms; document frequencies and lengths come from the matrix, so adding
rows (new chunks) or dropping rows (deleted ones) is all an update needs. Terms: Chinese runs segmented
by jieba, other text as lower-cased letter/digit words with a light plural stemmer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from ..evaluation.textmetrics import HAN  # the project's one Han range

K1, B = 1.5, 0.75  # Robertson's usual defaults (also rank_bm25's and bm25s's)
_RUNS = re.compile(f"[{HAN}]+|[^\\W_{HAN}]+")  # runs of Han characters, runs of other letters and digits
_HAN = re.compile(f"[{HAN}]")
_STOP = frozenset("a an the of to in and or is are was were be been it its on at by for with as from that this "
                  "which what who whom when where why how did do does".split())


def _jieba():
    import logging

    import jieba

    jieba.setLogLevel(logging.WARNING)  # its dictionary-loading banner is noise in our output
    return jieba


def _stem(word: str) -> str:
    """A light English stemmer: plurals only (cars → car, studies → study), enough to match forms."""
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def tokenize(text: str) -> list[str]:
    """BM25 terms of ``text``: jieba words for Han runs, stemmed lower-case words otherwise, stopwords out."""
    terms: list[str] = []
    for run in _RUNS.findall(text):
        if _HAN.match(run):
            terms.extend(w for w in _jieba().lcut(run) if w.strip())
        else:
            word = run.lower()
            if word not in _STOP:
                terms.append(_stem(word))
    return terms


@dataclass
class BM25:
    """Term frequencies (a CSR matrix, rows = chunks) and the vocabulary (term → column)."""

    vocab: dict[str, int] = field(default_factory=dict)
    tf: object = None  # scipy.sparse.csr_matrix [chunks, terms] of float32 counts
    _weights: object = None  # CSC matrix of per-(chunk, term) BM25 weights, built on first search

    def __post_init__(self):
        from scipy import sparse

        if self.tf is None:
            self.tf = sparse.csr_matrix((0, len(self.vocab)), dtype=np.float32)

    def __len__(self) -> int:
        return self.tf.shape[0]

    def rows(self, texts: list[str]):
        """The term-frequency rows of ``texts``, growing the vocabulary with their new terms."""
        from scipy import sparse

        indptr, indices, data = [0], [], []
        for text in texts:
            counts: dict[int, int] = {}
            for term in tokenize(text):
                col = self.vocab.setdefault(term, len(self.vocab))
                counts[col] = counts.get(col, 0) + 1
            indices.extend(counts)
            data.extend(counts.values())
            indptr.append(len(indices))
        return sparse.csr_matrix((np.asarray(data, np.float32), np.asarray(indices, np.int64), indptr),
                                 shape=(len(texts), len(self.vocab)))

    def add(self, texts: list[str]) -> None:
        """Append ``texts`` as new rows."""
        from scipy import sparse

        new = self.rows(texts)
        old = self.tf
        old.resize((old.shape[0], len(self.vocab)))
        self.tf = sparse.vstack([old, new], format="csr")
        self._weights = None

    def keep(self, mask: np.ndarray) -> None:
        """Drop the rows where ``mask`` is False (deleted chunks)."""
        self.tf = self.tf[np.flatnonzero(mask)]
        self._weights = None

    def weights(self):
        """Per-(chunk, term) BM25 contributions: idf · tf·(k1+1) / (tf + k1·(1 − b + b·len/avglen))."""
        if self._weights is None:
            tf = self.tf.tocsr(copy=True)
            n = tf.shape[0]
            lengths = np.asarray(tf.sum(axis=1)).ravel()
            avg = lengths.mean() if n else 1.0
            df = np.bincount(tf.indices, minlength=tf.shape[1])
            idf = np.log(1.0 + (n - df + 0.5) / (df + 0.5)).astype(np.float32)  # Lucene's non-negative idf
            norm = np.repeat(K1 * (1 - B + B * lengths / max(avg, 1e-9)), np.diff(tf.indptr))
            tf.data = (idf[tf.indices] * tf.data * (K1 + 1) / (tf.data + norm)).astype(np.float32)
            self._weights = tf.tocsc()
        return self._weights

    def scores(self, query: str) -> np.ndarray:
        """The BM25 score of every chunk for ``query`` (zeros where no query term occurs)."""
        cols = [self.vocab[t] for t in tokenize(query) if t in self.vocab]
        if not cols or not len(self):
            return np.zeros(len(self), dtype=np.float32)
        return np.asarray(self.weights()[:, cols].sum(axis=1), dtype=np.float32).ravel()
