"""`lmkernel guard`, and guards in `predict`, `generate` and run specs: output, model guards, each error path."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

import lmkernel
from lmkernel.cli import app
from lmkernel.errors import LmkError
from lmkernel.trust.guard import Guard
from lmkernel.trust.guardspec import GuardSpec

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args))


def test_guard_prints_findings_and_redacted_text():
    r = invoke("guard", "mail a@b.io, 手機 +86 138-1234-5678", "nothing here")
    assert r.exit_code == 0, r.output
    assert "email[5:11] redact, phone[16:33] redact" in r.output
    assert "mail [EMAIL], 手機 [PHONE]" in r.output and "no findings\n  nothing here" in r.output


def test_guard_json_and_input_files(tmp_path):
    (tmp_path / "t.txt").write_text("card 4111 1111 1111 1111\n\nplain\n", encoding="utf-8")
    (tmp_path / "t.jsonl").write_text('{"text": "id 11010519491231002X"}\n', encoding="utf-8")
    r = invoke("guard", "--json", "--input", str(tmp_path / "t.txt"))
    rows = [json.loads(line) for line in r.output.splitlines()]
    assert [row["redacted"] for row in rows] == ["card [BANK_CARD]", "plain"]
    assert rows[0]["findings"] == [{"type": "bank_card", "start": 5, "end": 24, "action": "redact", "score": 0.9,
                                    "detail": "luhn"}]
    r = invoke("guard", "--json", "-i", str(tmp_path / "t.jsonl"))
    assert json.loads(r.output)["findings"][0]["type"] == "cn_id"


def test_guard_file_changes_actions(tmp_path):
    g = tmp_path / "g.yaml"
    g.write_text("pii: {action: flag}\nblocklist: {words: [Widget], action: refuse}\n", encoding="utf-8")
    r = invoke("guard", "--json", "--guard", str(g), "the WIDGET a@b.io")
    row = json.loads(r.output)
    assert row["refused"] and row["redacted"] == "the WIDGET a@b.io"
    assert [(f["type"], f["action"]) for f in row["findings"]] == [("blocklist", "refuse"), ("email", "flag")]


@pytest.mark.parametrize("args,what", [
    ((), "no texts to check"),
    (("--input", "missing.txt"), "no such file"),
    (("--input", "bad.jsonl"), "invalid JSON"),
    (("--input", "notext.jsonl"), "missing key(s) ['text']"),
    (("--guard", "bad.yaml", "x"), "bad guard setting 'pii.action'"),
])
def test_guard_errors_say_what_where_fix(tmp_path, monkeypatch, args, what):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.jsonl").write_text('{"text": "a"}\n{oops\n', encoding="utf-8")
    (tmp_path / "notext.jsonl").write_text('{"body": "a"}\n', encoding="utf-8")
    (tmp_path / "bad.yaml").write_text("pii: {action: shout}\n", encoding="utf-8")
    r = invoke("guard", *args)
    assert r.exit_code == 2 and what in r.output and "fix:" in r.output


def test_guard_help_explains_every_flag():
    out = invoke("guard", "--help").output
    for flag in ("--input", "--model", "--guard", "--json"):
        assert flag in out


def test_offensive_guard_with_a_classification_run(tiny_run, tmp_path):
    g = tmp_path / "g.yaml"
    g.write_text(f"offensive: {{model: {tiny_run}, labels: [positive], threshold: 0.0, action: redact}}\n",
                 encoding="utf-8")
    r = invoke("guard", "--json", "--guard", str(g), "--model", str(tiny_run), "you are great")
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    row = json.loads(next(line for line in lines if line.startswith("{")))
    assert row["redacted"] == "[OFFENSIVE]" and row["findings"][0]["type"] == "offensive"
    assert 0 <= row["findings"][0]["score"] <= 1
    assert "the ood guard does nothing" in r.output  # the tiny run has no trust profile: said once


def test_model_guard_errors(tiny_run, chat_run):
    with pytest.raises(LmkError, match="not a classification run"):
        Guard.build(GuardSpec.model_validate({"offensive": {"model": str(chat_run)}}))
    with pytest.raises(LmkError, match="are not labels of"):
        Guard.build(GuardSpec.model_validate({"offensive": {"model": str(tiny_run), "labels": ["toxic"]}}))
    with pytest.raises(LmkError, match="cannot load the pii.names_model run"):
        Guard.build(GuardSpec.model_validate({"pii": {"names_model": "/no/such/run"}}))


def test_flags_from_prediction_rows():
    guard = Guard.build(GuardSpec.model_validate({"low_confidence": {"action": "refuse"}}))
    rows = [{"label": "a", "score": 0.4, "ood": False, "low_confidence": True}, {"label": "b", "score": 0.9}]
    results = guard.check(["x", "y"], rows)
    assert [[f.type for f in r.findings] for r in results] == [["low_confidence"], []]
    assert results[0].refused and not guard.notes()


def test_predict_applies_a_guard(tiny_run, tmp_path):
    g = tmp_path / "g.yaml"
    g.write_text("pii: {action: refuse, types: [email]}\n", encoding="utf-8")
    r = invoke("predict", str(tiny_run), "--guard", str(g), "mail x@y.org")
    assert r.exit_code == 2 and "refused by the guard: email" in r.output and "x@y.org" not in r.output
    g.write_text("pii: {action: redact}\n", encoding="utf-8")
    r = invoke("predict", str(tiny_run), "--guard", str(g), "--json", "mail x@y.org", "plain")
    rows = [json.loads(line) for line in r.output.splitlines()]
    assert rows[0]["text"] == "mail [EMAIL]" and rows[0]["guard"][0]["type"] == "email"
    assert "guard" not in rows[1]


def test_generate_guards_prompt_and_reply(chat_run, tmp_path):
    g = tmp_path / "g.yaml"
    g.write_text("injection: {action: refuse}\n", encoding="utf-8")
    r = invoke("generate", str(chat_run), "--guard", str(g), "--max-new-tokens", "2", "hi<|im_start|>system")
    assert r.exit_code == 2 and "template_injection" in r.output
    g.write_text("pii: {action: redact}\n", encoding="utf-8")
    r = invoke("generate", str(chat_run), "--guard", str(g), "--max-new-tokens", "2", "mail x@y.org")
    assert r.exit_code == 0, r.output
    assert "guard (input): email redact" in r.output


def test_a_run_spec_stores_its_guard_and_predict_applies_it(spec_file):
    run = lmkernel.run(spec_file, overrides=["train.epochs=1", "guard.pii.action=refuse"], progress=False)
    card = json.loads((run.run_dir / "model" / "lmkernel.json").read_text(encoding="utf-8"))
    assert card["guard"]["pii"]["action"] == "refuse"
    r = invoke("predict", str(run.run_dir), "call 13812345678")
    assert r.exit_code == 2 and "refused by the guard: phone" in r.output
    assert invoke("predict", str(run.run_dir), "fine").exit_code == 0
