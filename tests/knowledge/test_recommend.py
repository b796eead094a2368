"""Recommendation by text: multi-interest histories, filters, seen items, duplicates, recency."""

from __future__ import annotations

import numpy as np
import pytest

from lmkernel.errors import LmkError
from lmkernel.knowledge.recommend import Item, recommend

WORDS = ["card", "loan", "travel", "hotel", "flight", "rate", "fee", "phone"]


class BagOfWords:
    """A deterministic embedder: unit word-count vectors over WORDS (plus a constant so none is zero)."""

    def __init__(self):
        self.calls = 0

    def embed(self, texts):
        self.calls += 1
        out = np.array([[t.lower().split().count(w) for w in WORDS] + [0.1] for t in texts], dtype=np.float32)
        return out / np.linalg.norm(out, axis=1, keepdims=True)


ITEMS = [
    Item("c1", "card fee card", {"kind": "card", "lang": "en"}),
    Item("c2", "card rate card card", {"kind": "card", "lang": "en"}),
    Item("l1", "loan rate loan", {"kind": "loan", "lang": "en"}),
    Item("t1", "travel hotel flight", {"kind": "travel", "lang": "zh"}),
    Item("t2", "travel hotel flight", {"kind": "travel", "lang": "en"}),  # the same text as t1
    Item("p1", "phone", {"kind": "other", "lang": "en"}),
]


def test_a_user_with_two_interests_gets_items_of_both():
    recs = recommend(ITEMS, ["card fee", "hotel flight"], BagOfWords(), k=2)
    kinds = {r.meta["kind"] for r in recs}
    assert kinds == {"card", "travel"}, recs
    assert next(r for r in recs if r.meta["kind"] == "travel").because == "hotel flight"


def test_history_ids_are_not_recommended_again_and_stand_for_their_text():
    recs = recommend(ITEMS, ["c1"], BagOfWords(), k=3, dedup=1.0)
    ids = [r.id for r in recs]
    assert "c1" not in ids and ids[0] == "c2"  # c2 is the closest to c1's text
    assert recs[0].because == "card fee card"


def test_filters_and_duplicates():
    emb = BagOfWords()
    both = recommend(ITEMS, ["travel"], emb, k=2, dedup=1.0)
    assert {r.id for r in both} == {"t1", "t2"}
    deduped = recommend(ITEMS, ["travel"], emb, k=2)
    assert [r.id for r in deduped][0] in {"t1", "t2"} and sum(r.id.startswith("t") for r in deduped) == 1
    only_zh = recommend(ITEMS, ["travel"], emb, k=5, filters={"lang": "zh"})
    assert [r.id for r in only_zh] == ["t1"]
    any_of = recommend(ITEMS, ["rate"], emb, k=5, filters={"kind": ["loan", "other"]})
    assert [r.id for r in any_of] == ["l1", "p1"]
    assert recommend(ITEMS, ["rate"], emb, k=5, filters={"kind": "nothing"}) == []


def test_recent_history_counts_more():
    emb = BagOfWords()
    old_loan_new_card = recommend(ITEMS, ["loan", "card"], emb, k=1, recency=0.5)
    old_card_new_loan = recommend(ITEMS, ["card", "loan"], emb, k=1, recency=0.5)
    assert old_loan_new_card[0].meta["kind"] == "card" and old_card_new_loan[0].meta["kind"] == "loan"


def test_cached_item_vectors_give_the_same_answer_without_embedding_items():
    emb = BagOfWords()
    cached = emb.embed([it.text for it in ITEMS])
    emb.calls = 0
    with_cache = recommend(ITEMS, ["card fee"], emb, k=3, item_vectors=cached)
    assert emb.calls == 1  # only the history
    assert [r.id for r in with_cache] == [r.id for r in recommend(ITEMS, ["card fee"], BagOfWords(), k=3)]
    with pytest.raises(LmkError, match="cached item vectors"):
        recommend(ITEMS, ["card"], emb, item_vectors=cached[:2])


@pytest.mark.parametrize("history,k,match", [([], 3, "history is empty"), (["  "], 3, "history is empty"),
                                             (["card"], 0, "at least 1")])
def test_bad_requests_say_what_to_do(history, k, match):
    with pytest.raises(LmkError, match=match):
        recommend(ITEMS, history, BagOfWords(), k=k)
