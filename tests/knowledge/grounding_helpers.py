"""A small in-memory index with the knowledge index's search API (INDEX_API.md), for the grounding tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

FAQ = [
    ("faq-1", "To reset your password, open Settings, choose Account and press Reset password."),
    ("faq-2", "Refunds are paid back to the original card within five working days."),
    ("faq-3", "Our support line is open from 9:00 to 18:00, Monday to Friday."),
    ("faq-4", "退货需要在收到商品后七天内申请，并保持商品完好。"),
]


@dataclass
class FakeHit:
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


class FakeIndex:
    """Ranks chunks by the embedder's cosine (``dense``: a fixed cosine instead, to test the threshold)."""

    def __init__(self, embedder, docs=FAQ, dense: float | None = None):
        self.embedder = embedder
        self.dense = dense
        self.docs = list(docs)
        self.searches: list[str] = []
        self.refreshed = 0

    def add(self, doc_id: str, text: str) -> None:
        self.docs.append((doc_id, text))

    def refresh(self) -> None:
        self.refreshed += 1

    def info(self) -> dict:
        return {"identity": self.embedder.identity, "chunks": len(self.docs)}

    def search(self, query: str, k: int = 5, filters: dict | None = None, mode: str = "hybrid") -> list[FakeHit]:
        self.searches.append(query)
        vectors = self.embedder.embed([query] + [t for _, t in self.docs])
        cos = vectors[1:] @ vectors[0]
        order = np.argsort(-cos, kind="stable")[:k]
        return [FakeHit(text=self.docs[i][1], score=float(cos[i]), source=self.docs[i][0],
                        chunk_id=f"{self.docs[i][0]}#0", doc_id=self.docs[i][0], meta={"lang": "en"},
                        dense=self.dense if self.dense is not None else float(cos[i]))
                for i in order]
