"""Reading QA data: both layouts, answer relocation, unanswerable questions, counted bad rows."""

from __future__ import annotations

import json

import pytest
from qa_helpers import qa_rows, write_jsonl, write_squad

from lmkernel.data.splits import split_off
from lmkernel.errors import LmkError
from lmkernel.spec import DataSpec
from lmkernel.tasks.qa import QaTask
from lmkernel.tasks.qa_data import locate, read_qa


def _read(path, on_bad_rows="skip"):
    return QaTask().read(path, DataSpec(train=path, on_bad_rows=on_bad_rows), None)


def test_squad_and_flat_layouts_read_the_same_questions(tmp_path):
    rows = qa_rows(12)
    flat = _read(write_jsonl(tmp_path / "a.jsonl", rows))
    squad = _read(write_squad(tmp_path / "a.json", rows, impossible=2))
    assert [e.fields["question"] for e in flat.examples] == [r["question"] for r in rows]
    assert len(squad.examples) == 14 and not squad.bad
    impossible = [e for e in squad.examples if not e.label]
    assert len(impossible) == 2 and all(e.fields["spans"] == [] for e in impossible)
    e = flat.examples[1]
    start, end = e.fields["spans"][0]
    assert e.fields["context"][start:end] == e.label[0]


def test_answer_start_off_by_a_few_characters_is_relocated(tmp_path):
    context = "the film was great and the book was great too"
    row = {"id": "r1", "question": "q", "context": context,
           "answers": [{"text": "great", "answer_start": context.rindex("great") - 2}]}
    result = read_qa(write_jsonl(tmp_path / "r.jsonl", [row]))
    assert result.examples[0].fields["spans"] == [(context.rindex("great"), context.rindex("great") + 5)]
    assert result.relocated == 1 and not result.bad
    assert locate(context, "great", None) == (13, 18)  # without a start: the first occurrence
    assert locate(context, "  great  ", 30) == (36, 41)  # outer spaces dropped (not in the context with them)


def test_answers_in_other_shapes(tmp_path):
    rows = [{"question": "q", "context": "the room was bad", "answers": {"text": ["bad"], "answer_start": [13]}},
            {"question": "q", "context": "the room was bad", "answers": ["bad"]},
            {"question": "q", "context": "the room was bad", "answers": []}]
    ex = read_qa(write_jsonl(tmp_path / "s.jsonl", rows)).examples
    assert [e.fields["spans"] for e in ex] == [[(13, 16)], [(13, 16)], []]


def test_bad_rows_are_counted_with_file_line_and_question_id(tmp_path):
    rows = [{"id": "ok", "question": "q", "context": "the room was bad", "answers": ["bad"]},
            {"id": "gone", "question": "q", "context": "the room was bad", "answers": [{"text": "good",
                                                                                      "answer_start": 13}]},
            {"id": "noq", "question": " ", "context": "the room was bad", "answers": ["bad"]},
            {"id": "noc", "question": "q", "context": "", "answers": ["bad"]},
            {"id": "noa", "question": "q", "context": "the room was bad"}]
    path = write_jsonl(tmp_path / "bad.jsonl", rows)
    ds = _read(path)
    assert len(ds.examples) == 1
    reasons = [b.render() for b in ds.bad]
    assert reasons[0] == (f"{path}:2: question gone: answer 'good' is not in the context "
                          "(answer_start 13 shows 'bad')")
    assert [r.split(": ", 2)[1] for r in reasons[1:]] == ["question noq", "question noc", "question noa"]
    with pytest.raises(LmkError, match="bad row .*question gone.*3 more bad row"):
        _read(path, on_bad_rows="error")


def test_squad_json_errors_name_the_line(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"data": [\n{"paragraphs": [}\n]}', encoding="utf-8")
    with pytest.raises(LmkError) as e:
        read_qa(path)
    assert "line 2" in e.value.where
    (tmp_path / "list.json").write_text(json.dumps([{"question": "q"}]), encoding="utf-8")
    with pytest.raises(LmkError, match="not in SQuAD layout"):
        read_qa(tmp_path / "list.json")
    squad = write_squad(tmp_path / "s.json", qa_rows(3))
    text = squad.read_text(encoding="utf-8").replace('"answer_start": 13', '"answer_start": 0', 1)
    squad.write_text(text.replace('"text": "great"', '"text": "superb"', 1), encoding="utf-8")
    bad = read_qa(squad).bad
    assert len(bad) == 1 and bad[0].reason.startswith("question q0:") and bad[0].line > 1


def test_hold_out_keeps_a_context_together(tmp_path):
    examples = _read(write_squad(tmp_path / "a.json", qa_rows(36))).examples
    kept, held = split_off(examples, 0.3, 0, QaTask().split_group)
    assert {e.fields["group"] for e in kept}.isdisjoint({e.fields["group"] for e in held})
    assert 0.2 * len(examples) <= len(held) <= 0.45 * len(examples)
