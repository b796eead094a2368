"""Grounded answers: prompt building, citation mapping, the threshold and the QA path, with fake models."""

from __future__ import annotations

import pytest
from grounding_helpers import FakeIndex

from lmkernel.errors import LmkError
from lmkernel.knowledge.answer import (
    DONT_KNOW,
    ask,
    best_score,
    build_messages,
    cite,
    dont_know,
    language,
    prepare,
)
from lmkernel.knowledge.index import Hit


@pytest.fixture(scope="module")
def embedder(tiny_bert):
    from lmkernel.knowledge.embedder import load_embedder

    return load_embedder(str(tiny_bert))


def hits(n: int) -> list[Hit]:
    return [Hit(text=f"passage {i}", score=1.0 / i, source=f"doc{i}", chunk_id=f"doc{i}#0", doc_id=f"doc{i}",
                    dense=0.9 - i / 10) for i in range(1, n + 1)]


def test_citations_map_markers_to_chunks_in_order_of_use():
    three = hits(3)
    got = cite("Reset it in settings [2]. Also [1][2], see 【3】 and [1, 3]; not [7] or [0].", three)
    assert [(c.index, c.chunk_id, c.source, c.text) for c in got] == [
        (2, "doc2#0", "doc2", "passage 2"), (1, "doc1#0", "doc1", "passage 1"), (3, "doc3#0", "doc3", "passage 3")]
    assert cite("no markers here", three) == [] and cite("[4]", three) == []


def test_prompt_numbers_passages_and_speaks_the_questions_language():
    msgs = build_messages("How do I reset it?", hits(2), history=[{"role": "system", "content": "Be brief."}])
    assert msgs[0] == {"role": "system", "content": "Be brief."} and msgs[1]["role"] == "user"
    turn = msgs[1]["content"]
    assert "[1] passage 1" in turn and "[2] passage 2" in turn and "only" in turn
    assert turn.index("[1] passage 1") < turn.index("[2] passage 2") < turn.index("How do I reset it?")
    zh = build_messages("怎么退货？", hits(1))[0]["content"]
    assert "资料" in zh and "[1] passage 1" in zh and zh.endswith("怎么退货？")
    assert language("怎么退货") == "zh" and language("how") == "en"
    assert dont_know("怎么退货") == DONT_KNOW["zh"] and dont_know("why?") == DONT_KNOW["en"]


def test_ask_with_a_fixed_generator_cites_the_right_chunks(embedder):
    index = FakeIndex(embedder)
    seen = []

    def generator(messages):
        seen.append(messages)
        return "Reset it in settings [2]."

    answer = ask(index, "  How do I reset my password?  ", generator=generator, k=3)
    assert answer.grounded and answer.answer == "Reset it in settings [2]."
    top = index.search("How do I reset my password?", k=3)
    assert [c.chunk_id for c in answer.citations] == [top[1].chunk_id]
    assert answer.citations[0].index == 2 and answer.citations[0].text == top[1].text
    assert seen[0] == build_messages("How do I reset my password?", top)  # the question stripped
    assert answer.to_json()["citations"][0]["chunk_id"] == top[1].chunk_id
    assert len(answer.to_json()["passages"]) == 3


def test_below_the_threshold_no_model_is_called_and_the_reply_follows_the_language(embedder):
    index = FakeIndex(embedder, dense=0.1)

    def generator(messages):
        raise AssertionError("the model must not run below the threshold")

    en = ask(index, "What is the weather on Mars?", generator=generator, min_score=0.3)
    assert not en.grounded and en.answer == DONT_KNOW["en"] and en.citations == [] and en.best_score == 0.1
    zh = ask(index, "火星上的天气怎么样？", generator=generator, min_score=0.3)
    assert zh.answer == DONT_KNOW["zh"]
    assert ask(index, "anything", generator=lambda m: "x [1]", min_score=0.05).grounded


def test_threshold_uses_the_dense_cosine_not_the_fused_score():
    h = hits(2)
    assert best_score(h) == pytest.approx(0.8)
    assert best_score([Hit("t", 3.0, "s", "c", "d")]) is None  # bm25 only: no cosine, no threshold


def test_passages_are_dropped_until_the_prompt_fits(embedder):
    index = FakeIndex(embedder)
    g = prepare(index, "refund", k=4, fits=lambda m: m[-1]["content"].count("\n[") <= 2)
    assert g.known and len(g.hits) == 2
    with pytest.raises(LmkError, match="longer than the model's context"):
        prepare(index, "refund", k=4, fits=lambda m: False)


class FakeQA:
    def __init__(self):
        self.rows = []

    def predict(self, rows):
        self.rows = rows
        return [{"answer": "five working days" if "Refunds" in r["context"] else "", "score": 0.8,
                 "start": 0, "end": 1} for r in rows]


def test_extractive_qa_answers_with_the_best_span_cited(embedder):
    qa = FakeQA()
    answer = ask(FakeIndex(embedder), "When do refunds arrive?", qa=qa, k=4)
    refund = next(i for i, r in enumerate(qa.rows, 1) if "Refunds" in r["context"])
    assert answer.answer == f"five working days [{refund}]" and answer.grounded
    assert [c.chunk_id for c in answer.citations] == ["faq-2#0"] and answer.citations[0].index == refund
    assert all(r["question"] == "When do refunds arrive?" for r in qa.rows)
    none = ask(FakeIndex(embedder, docs=[("x", "nothing relevant")]), "When?", qa=FakeQA())
    assert not none.grounded and none.answer == DONT_KNOW["en"]


@pytest.mark.parametrize("kwargs, needle", [
    ({"question": "   "}, "question is empty"),
    ({"question": "q", "k": 0}, "k must be between"),
    ({"question": "q", "k": 51}, "k must be between"),
    ({"question": "q", "mode": "fuzzy"}, "unknown search mode"),
])
def test_bad_questions_are_refused(embedder, kwargs, needle):
    with pytest.raises(LmkError, match=needle):
        ask(FakeIndex(embedder), generator=lambda m: "", **kwargs)


def test_ask_needs_exactly_one_model(embedder):
    with pytest.raises(LmkError, match="exactly one"):
        ask(FakeIndex(embedder), "q")
    with pytest.raises(LmkError, match="exactly one"):
        ask(FakeIndex(embedder), "q", generator=lambda m: "", qa=FakeQA())


def test_an_optional_bm25_threshold_also_says_not_known():
    class Fixed:
        def search(self, query, k=5, filters=None, mode="hybrid"):
            return [Hit("t", 0.03, "s", "s#0", "s", {}, dense=0.9, bm25=4.0)]

    assert prepare(Fixed(), "q", min_bm25=None).known and prepare(Fixed(), "q", min_bm25=3.9).known
    assert not prepare(Fixed(), "q", min_bm25=4.1).known
    assert not ask(Fixed(), "退货?", generator=lambda m: "x", min_bm25=8).grounded
