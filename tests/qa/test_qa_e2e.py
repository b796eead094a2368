"""The qa task end to end on the tiny BERT: run, Python predict, CLI eval and predict, errors."""

from __future__ import annotations

import json

import pytest
from qa_helpers import qa_rows, write_jsonl, write_squad
from typer.testing import CliRunner

import lmkernel
from lmkernel.cli import app
from lmkernel.errors import LmkError

CONTEXT = qa_rows(1)[0]["context"]  # "the film was great"


def test_run_learns_and_records_its_choices(qa_run):
    metrics = json.loads((qa_run / "metrics.json").read_text(encoding="utf-8"))["validation"]
    assert metrics["f1"] > 80 and metrics["exact_match"] > 80
    card = lmkernel.load(qa_run).card
    assert card["task"] == "qa" and card["task_options"]["no_answer"] == "never"  # auto: no unanswerables in train


def test_python_predict(qa_run):
    model = lmkernel.load(qa_run)
    rows = qa_rows(6)
    out = model.predict([{"question": r["question"], "context": r["context"]} for r in rows[:5]]
                        + [(rows[5]["question"], rows[5]["context"])])
    assert [set(o) for o in out] == [{"answer", "score", "start", "end"}] * 6
    assert all(o["answer"] == r["context"][o["start"]:o["end"]] and 0 < o["score"] <= 1 for o, r in zip(out, rows))
    assert sum(o["answer"] == r["answers"][0]["text"] for o, r in zip(out, rows)) >= 5
    one = model.predict({"question": rows[0]["question"], "context": rows[0]["context"]})  # one item, not a list
    assert one == out[:1]
    with pytest.raises(LmkError, match="not a question with its context"):
        model.predict(["the film was lovely"])
    with pytest.raises(LmkError, match="empty or missing context"):
        model.predict([{"question": "the film was", "context": "  "}])


def test_cli_eval_and_predict(qa_run, tmp_path):
    runner = CliRunner()
    dev = write_squad(tmp_path / "dev.json", qa_rows(12))
    r = runner.invoke(app, ["eval", str(qa_run), "--data", str(dev), "--out", str(tmp_path / "ev")])
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "ev" / "metrics.json").read_text(encoding="utf-8"))["eval"]["f1"] > 80
    r = runner.invoke(app, ["predict", str(qa_run), "--context", CONTEXT, "-q", "the film was", "-q", "the room was"])
    assert r.exit_code == 0, r.output
    lines = [json.loads(x) for x in r.output.strip().splitlines()]
    assert len(lines) == 2 and lines[0]["answer"] == "great"
    assert lines[1]["answer"] == CONTEXT[lines[1]["start"]:lines[1]["end"]]
    rows = write_jsonl(tmp_path / "ask.jsonl", [{"question": "the film was", "context": CONTEXT}])
    r = runner.invoke(app, ["predict", str(qa_run), "--input", str(rows)])
    assert r.exit_code == 0 and json.loads(r.output)["answer"] == "great", r.output


@pytest.mark.parametrize("args,message", [
    (["-q", "a", "-q", "b", "-c", "x", "-c", "y", "-c", "z"], "2 --question but 3 --context"),
    (["-c", "the film was good"], "--context without --question"),
    (["the film was good"], "not bare texts"),
])
def test_cli_predict_errors(qa_run, args, message):
    r = CliRunner().invoke(app, ["predict", str(qa_run), *args])
    assert r.exit_code != 0 and message in r.output, r.output

