"""Choices made from the documents' language: the default embedding model and the fusion weights."""

from __future__ import annotations

from typing import Any

from .chunking import han_share

ZH_SHARE = 0.3  # above this share of Han characters a text counts as Chinese
ENGLISH_ONLY = ("minilm",)  # encoders that read little Chinese: their dense list counts less for Chinese queries
# the dense list's weight in the fusion for a Chinese query with an English-only encoder: on CMRC 2018 its
# list is near noise and any real weight pulled BM25's recall down (bench/retrieval.py's weight sweep), so
# it only breaks BM25's ties and fills in when BM25 matches fewer than k chunks
ZH_DENSE_WEIGHT = 0.001


def language(text: str) -> str:
    return "zh" if han_share(text) > ZH_SHARE else "en"


def reads(query: str, manifest: dict[str, Any]) -> bool:
    """Whether the index's embedding model reads ``query``'s language (an English-only encoder does not read
    Chinese: its cosine then says nothing about relevance)."""
    return not (language(query) == "zh" and str(manifest.get("embedder", {}).get("model", "")) in ENGLISH_ONLY)


def languages(texts: list[str]) -> dict[str, int]:
    """How many texts are Chinese and how many English (by their share of Han characters)."""
    counts = {"en": 0, "zh": 0}
    for text in texts:
        counts[language(text)] += 1
    return counts


def choose_model(texts: list[str]) -> tuple[str, str]:
    """The default embedding model for documents like ``texts``, and why."""
    share = sum(han_share(t) for t in texts) / max(len(texts), 1)
    if share > ZH_SHARE:
        return "minilm", (f"documents are mostly Chinese (Han share {share:.2f}); minilm is the only installed "
                          "sentence encoder, and it reads little Chinese: BM25 with jieba carries Chinese retrieval "
                          "until a Chinese encoder (or an embedding run, --model RUN) is given")
    return "minilm", f"documents are mostly English (Han share {share:.2f}): minilm, an English sentence encoder"


def fusion_weights(query: str, manifest: dict[str, Any]) -> tuple[float, float]:
    """(BM25 weight, dense weight) for reciprocal rank fusion of ``query``'s two lists."""
    fusion = manifest.get("settings", {}).get("fusion", {})
    if not reads(query, manifest):
        return float(fusion.get("bm25", 1.0)), float(fusion.get("dense_zh", ZH_DENSE_WEIGHT))
    return float(fusion.get("bm25", 1.0)), float(fusion.get("dense", 1.0))
