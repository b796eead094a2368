"""The support bot's decisions on fakes: hand-off, out of scope, don't know, answers with citations, eval."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from lmkernel.app.build import _judge, eval_markdown, summarize
from lmkernel.app.spec import AppSpec
from lmkernel.app.support import SupportBot, language
from lmkernel.errors import LmkError


@dataclass
class FakeHit:
    text: str
    doc_id: str
    dense: float
    meta: dict = field(default_factory=dict)
    score: float = 0.0

    @property
    def chunk_id(self):
        return f"{self.doc_id}#0"

    @property
    def source(self):
        return self.doc_id


class FakeIndex:
    def __init__(self, hits):
        self.hits, self.calls = hits, []

    def search(self, query, k=5, filters=None, mode="hybrid"):
        self.calls.append(filters)
        return [h for h in self.hits if all(h.meta.get(key) == v for key, v in (filters or {}).items())][:k]


class FakeIntents:
    def __init__(self, label, score):
        self.label, self.score = label, score

    def predict(self, texts):
        return [{"label": self.label, "score": self.score} for _ in texts]


HITS = [FakeHit("Freeze the card in the app.", "lost-card-en", 0.8, {"lang": "en"}),
        FakeHit("请立即冻结该卡。", "lost-card-zh", 0.7, {"lang": "zh"}),
        FakeHit("Transfers arrive in 2 hours.", "transfer-en", 0.3, {"lang": "en"})]


def make_spec(tmp_path, **over) -> AppSpec:
    docs = tmp_path / "faq.jsonl"
    docs.write_text("{}\n")
    tree = {"app": {"name": "t"}, "knowledge": {"docs": [str(docs)]},
            "intents": {"run": str(tmp_path), "min_confidence": 0.6}, "handoff": {"out_of_scope": ["other"]}}
    tree.update(over)
    return AppSpec.model_validate(tree)


def test_language():
    assert language("我的卡丢了") == "zh" and language("I lost my card") == "en"
    assert language("ATM吞卡了") == "zh" and language("1234") == "en"


def test_handoff_and_out_of_scope_need_confidence(tmp_path):
    spec = make_spec(tmp_path)
    index = FakeIndex(HITS)
    assert SupportBot(spec, index, FakeIntents("human", 0.9)).respond("I want a person").kind == "handoff"
    reply = SupportBot(spec, index, FakeIntents("human", 0.9)).respond("我要人工")
    assert reply.kind == "handoff" and reply.text == spec.handoff.message_zh
    assert SupportBot(spec, index, FakeIntents("other", 0.9)).respond("tell me a joke").kind == "out_of_scope"
    unsure = SupportBot(spec, index, FakeIntents("human", 0.4)).respond("I lost my card")
    assert unsure.kind == "answer" and unsure.intent == "human"  # not confident: answered from the FAQ
    assert index.calls == [{"lang": "en"}]  # the message's language first


def test_answers_cite_the_passage_in_the_question_language(tmp_path):
    bot = SupportBot(make_spec(tmp_path), FakeIndex(HITS), FakeIntents("card", 0.9))
    reply = bot.respond("卡丢了怎么办")
    assert reply.kind == "answer" and reply.text == "请立即冻结该卡。" and reply.lang == "zh"
    assert reply.citations == [{"index": 1, "chunk_id": "lost-card-zh#0", "doc_id": "lost-card-zh",
                                "source": "lost-card-zh", "text": "请立即冻结该卡。"}]


def test_below_the_threshold_the_bot_says_it_does_not_know(tmp_path):
    spec = make_spec(tmp_path, answer={"min_score": 0.9})
    reply = SupportBot(spec, FakeIndex(HITS), None).respond("I lost my card")
    assert reply.kind == "unknown" and reply.text == spec.handoff.unknown_en and reply.score == pytest.approx(0.8)
    assert SupportBot(spec, FakeIndex([]), None).respond("x").kind == "unknown"  # an empty index


def test_no_passage_in_the_language_falls_back_to_all(tmp_path):
    index = FakeIndex(HITS[:1])
    reply = SupportBot(make_spec(tmp_path), index, None).respond("卡丢了")
    assert reply.kind == "answer" and reply.citations[0]["doc_id"] == "lost-card-en"
    assert index.calls == [{"lang": "zh"}, None]


def test_empty_message_is_an_error(tmp_path):
    with pytest.raises(LmkError, match="empty"):
        SupportBot(make_spec(tmp_path), FakeIndex(HITS)).respond("  ")


def test_spec_needs_one_intent_source_and_the_answer_model_its_mode(tmp_path):
    with pytest.raises(Exception, match="exactly one"):
        make_spec(tmp_path, intents={"spec": "a.yaml", "run": "b"})
    with pytest.raises(Exception, match="answer.qa"):
        make_spec(tmp_path, answer={"mode": "qa"})


def test_judging_and_summary(tmp_path):
    bot = SupportBot(make_spec(tmp_path), FakeIndex(HITS), None)
    rows = [{"question": "lost card", "expect": "lost-card-en", "contains": "Freeze"},
            {"question": "lost card?", "expect": "lost-card-en", "contains": "never said"},
            {"question": "weather", "expect": None}]
    judged = [_judge(r, bot.respond(r["question"])) for r in rows]
    assert [j["correct"] for j in judged] == [True, False, False]  # the last one answered: should have declined
    s = summarize(judged, 0.35)
    assert s["accuracy"] == pytest.approx(1 / 3) and s["citation_precision"] == 1.0
    assert s["declined_correctly"] == 0.0
    assert "| weather | None | answer | lost-card-en |" in eval_markdown(s, judged)
