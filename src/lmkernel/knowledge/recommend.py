"""Recommendation by text: rank catalogue items for a user by how close their texts are to the user's history.

The user is the texts they read, bought or asked about (free texts, or ids of catalogue items). Each history
text votes for the items near it, so a user with two interests gets items of both instead of items that sit
between them (the mean of unrelated vectors points at neither); recent history counts more. Items the user
has seen, items the filters exclude and near-duplicates of a better-ranked item are left out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import LmkError
from .ranking import matches_value  # the index's filter rule: search and recommend filter alike


@dataclass
class Item:
    """One catalogue entry: ``id``, the ``text`` that describes it, and metadata the filters look at."""

    id: str
    text: str
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class Recommendation:
    id: str
    text: str
    score: float  # the weighted similarity to the history (cosine scale: -1..1)
    because: str  # the history text this item is closest to: why it is recommended
    meta: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "text": self.text, "score": round(self.score, 6), "because": self.because,
                "meta": self.meta}


def matches(meta: dict[str, Any], filters: dict[str, Any] | None) -> bool:
    """Whether ``meta`` passes every filter: a value must be equal (as text), a list means any of its values."""
    for key, wanted in (filters or {}).items():
        have = meta.get(key)
        options = [str(o) for o in (wanted if isinstance(wanted, (list, tuple, set)) else [wanted])]
        if have is None or not matches_value(have, options):
            return False
    return True


def _history(history: Sequence[str], items: Sequence[Item]) -> tuple[list[str], set[str]]:
    """The history as texts, plus the ids of catalogue items it names (those are not recommended again).
    An entry equal to an item id stands for that item's text; anything else is a free text."""
    by_id = {it.id: it for it in items}
    texts, seen = [], set()
    for entry in history:
        entry = str(entry).strip()
        if not entry:
            continue
        if entry in by_id:
            seen.add(entry)
            texts.append(by_id[entry].text)
        else:
            texts.append(entry)
    return texts, seen


def recommend(items: Sequence[Item], history: Sequence[str], embedder: Any, k: int = 10, *,
              filters: dict[str, Any] | None = None, exclude_seen: bool = True, dedup: float = 0.95,
              recency: float = 0.8, item_vectors: np.ndarray | None = None) -> list[Recommendation]:
    """The ``k`` items that best match ``history`` (oldest first; item ids or free texts).

    Args:
        embedder: anything with ``embed(texts) -> unit vectors`` (``knowledge.embedder.Embedder``).
        filters: metadata the items must have (``{"lang": "zh", "category": ["card", "loan"]}``).
        exclude_seen: leave out items the history names by id, and items whose text equals a history text.
        dedup: an item whose cosine with a better-ranked pick is above this is a duplicate (1.0: keep all).
        recency: weight of each older history entry relative to the next (1.0: all count the same).
        item_vectors: the items' unit vectors if already computed (a cache), in the order of ``items``.

    Raises:
        LmkError: empty history, k < 1, or ``item_vectors`` of the wrong shape.
    """
    if k < 1:
        raise LmkError(f"k must be at least 1, got {k}", where="--k", fix="ask for 1 or more items")
    texts, seen = _history(history, items)
    if not texts:
        raise LmkError("the history is empty: nothing to recommend from", where="--history",
                       fix="give the texts the user read or asked about, or ids of catalogue items")
    if not 0 < recency <= 1:
        raise LmkError(f"recency must be in (0, 1], got {recency}", where="--recency",
                       fix="use 1.0 to weigh all history alike, less to favour recent entries")
    keep = [i for i, it in enumerate(items) if matches(it.meta, filters)
            and not (exclude_seen and (it.id in seen or it.text.strip() in {t.strip() for t in texts}))]
    if not keep:
        return []
    if item_vectors is None:
        item_vectors = embedder.embed([items[i].text for i in keep])
    else:
        if item_vectors.shape[0] != len(items):
            raise LmkError(f"{item_vectors.shape[0]} cached item vectors for {len(items)} items",
                           where="item_vectors", fix="recompute the vectors after the catalogue changed")
        item_vectors = item_vectors[keep]
    hist = embedder.embed(texts)
    weights = recency ** np.arange(len(texts) - 1, -1, -1, dtype=np.float32)  # newest entry weighs 1
    sims = item_vectors @ hist.T  # [items, history]
    # an item scores by the history entry it matches best, that entry's similarity weighted by its recency
    scores = (sims * weights).max(axis=1)
    order = np.argsort(-scores, kind="stable")
    picked: list[int] = []
    for j in order:
        if len(picked) == k:
            break
        if picked and dedup < 1.0 and float((item_vectors[picked] @ item_vectors[j]).max()) > dedup:
            continue
        picked.append(int(j))
    out = []
    for j in picked:
        it = items[keep[j]]
        out.append(Recommendation(id=it.id, text=it.text, score=float(scores[j]),
                                  because=texts[int(np.argmax(sims[j] * weights))], meta=dict(it.meta)))
    return out
