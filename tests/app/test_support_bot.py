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
    assert s["handed_off_correctly"] is None  # no request for a person among these
    person = SupportBot(make_spec(tmp_path), FakeIndex(HITS), FakeIntents("human", 0.9))
    asked = [_judge({"question": "a person please", "handoff": True}, person.respond("a person please")),
             _judge({"question": "a person please", "handoff": True}, bot.respond("a person please"))]
    assert [j["correct"] for j in asked] == [True, False]  # an answer is wrong when a person was asked for
    assert summarize(asked, 0.35)["handed_off_correctly"] == 0.5


def test_generate_mode_cites_the_passages_the_answer_uses(tmp_path):
    from lmkernel.app.support import answerer

    seen = []

    def chat(messages):  # a chat model as a messages -> text callable
        seen.append(messages)
        return "Freeze it at once [2]."

    hits = [HITS[2], HITS[0]]
    bot = SupportBot(make_spec(tmp_path, answer={"min_score": 0.2}), FakeIndex(hits), None,
                     answerer(3, generator=chat))
    reply = bot.respond("I lost my card")
    assert reply.kind == "answer" and reply.text == "Freeze it at once [2]."
    assert [c["doc_id"] for c in reply.citations] == ["lost-card-en"]  # [2] is the second passage
    assert "[2] Freeze the card in the app." in seen[0][-1]["content"]


def test_qa_mode_answers_with_the_best_span_or_does_not_know(tmp_path):
    from lmkernel.app.support import answerer

    class FakeQA:
        def __init__(self, answers):
            self.answers = answers

        def predict(self, rows):
            return [{"answer": self.answers.get(r["context"], ""), "score": 0.9} for r in rows]

    spec = make_spec(tmp_path)
    qa = FakeQA({"Freeze the card in the app.": "Freeze the card"})
    reply = SupportBot(spec, FakeIndex(HITS), None, answerer(3, qa=qa)).respond("I lost my card")
    assert reply.kind == "answer" and reply.text.startswith("Freeze the card")
    assert reply.citations[0]["doc_id"] == "lost-card-en"
    nothing = SupportBot(spec, FakeIndex(HITS), None, answerer(3, qa=FakeQA({}))).respond("I lost my card")
    assert nothing.kind == "unknown" and nothing.text == spec.handoff.unknown_en


def test_a_language_the_encoder_cannot_read_is_judged_by_bm25(tmp_path):
    """minilm's cosine says nothing about a Chinese message: answer.min_bm25 decides there, min_score elsewhere."""
    from dataclasses import replace

    zh_hit = replace(HITS[1], dense=0.95)
    zh_hit.bm25 = 1.5
    index = FakeIndex([zh_hit, HITS[0]])
    index.manifest = {"embedder": {"model": "minilm"}}
    spec = make_spec(tmp_path, answer={"min_score": 0.5, "min_bm25": 3.0})
    assert SupportBot(spec, index).respond("卡丢了怎么办").kind == "unknown"  # high cosine, low BM25
    zh_hit.bm25 = 4.0
    assert SupportBot(spec, index).respond("卡丢了怎么办").kind == "answer"
    index.manifest = {"embedder": {"model": "runs/zh-embedder"}}  # an encoder that reads Chinese: the cosine
    zh_hit.bm25, zh_hit.dense = 0.0, 0.4
    assert SupportBot(spec, index).respond("卡丢了怎么办").kind == "unknown"


def test_the_example_application_spec_and_its_intent_spec_load():
    from pathlib import Path

    from lmkernel.app.spec import load_app_spec
    from lmkernel.spec import load_spec

    folder = Path(__file__).resolve().parents[2] / "examples" / "support"
    spec = load_app_spec(folder / "bot.yaml")
    assert spec.intents.spec == folder / "intents.yaml" and spec.knowledge.docs == [folder / "faq.jsonl"]
    assert load_spec(spec.intents.spec).task.type == "classification"
