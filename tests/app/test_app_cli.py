"""End-to-end: `lmkernel app run|ask|eval` and `lmkernel recommend` on the tiny BERT."""

from __future__ import annotations

import json

from tests.clikit import cli

FAQ = [{"id": "card", "lang": "en", "text": "the card was lost : freeze the card in the app"},
       {"id": "hotel", "lang": "en", "text": "the hotel room was great"},
       {"id": "card-zh", "lang": "zh", "text": "房间太差"}]


def write_app(tmp_path, tiny_bert, with_intents=True):
    (tmp_path / "faq.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in FAQ), "utf-8")
    (tmp_path / "heldout.jsonl").write_text(
        json.dumps({"question": "the card was lost", "expect": "card", "contains": "freeze"}) + "\n"
        + json.dumps({"question": "the weather", "expect": None}) + "\n", "utf-8")
    rows = "text,label\n" + "".join(f"the film was {w},{lab}\n" for w, lab in
                                    [("great", "human"), ("awful", "card"), ("good", "human"), ("bad", "card")] * 4)
    (tmp_path / "intents.csv").write_text(rows, "utf-8")
    (tmp_path / "intents.yaml").write_text(
        f"task: {{type: classification}}\ndata: {{train: intents.csv, split: {{validation: 0.25}}}}\n"
        f"model: {{name: {tiny_bert}}}\ntrain: {{epochs: 1, batch_size: 8, precision: fp32}}\n", "utf-8")
    intents = "intents: {spec: intents.yaml, min_confidence: 0.0}\n" if with_intents else ""
    (tmp_path / "bot.yaml").write_text(
        "app: {name: bot}\n" + intents
        + f"knowledge: {{docs: [faq.jsonl], model: {tiny_bert}}}\n"
        "answer: {min_score: -1.0}\nhandoff: {intents: [human]}\neval: {data: heldout.jsonl}\noutput: out\n", "utf-8")
    return tmp_path / "bot.yaml"


def test_app_run_ask_eval(tmp_path, tiny_bert):
    spec = write_app(tmp_path, tiny_bert)
    out = cli("app", "run", spec, "-q")
    app_dir = tmp_path / "out"
    assert "eval: accuracy=" in out.output and (app_dir / "app.json").is_file()
    assert (app_dir / "intents" / "model").is_dir() and (app_dir / "index").is_dir()
    saved = json.loads((app_dir / "eval.json").read_text())
    assert saved["questions"] == 2 and len(saved["sweep"]) > 3 and "citation_precision" in saved
    reply = json.loads(cli("app", "ask", app_dir, "the card was lost", "--json").output)
    assert reply["kind"] in {"answer", "handoff"} and reply["lang"] == "en"
    if reply["kind"] == "answer":  # every answer cites the passage it came from
        assert reply["citations"][0]["text"] == reply["text"]
    assert "eval: accuracy=" in cli("app", "eval", app_dir, tmp_path / "heldout.jsonl", "-q").output


def test_app_without_intents_answers_from_the_faq(tmp_path, tiny_bert):
    spec = write_app(tmp_path, tiny_bert, with_intents=False)
    cli("app", "run", spec, "-q")
    reply = json.loads(cli("app", "ask", tmp_path / "out", "房间太差", "--json").output)
    assert reply["kind"] == "answer" and reply["lang"] == "zh" and reply["citations"][0]["doc_id"] == "card-zh"


def test_app_errors_name_the_fix(tmp_path, tiny_bert):
    write_app(tmp_path, tiny_bert)
    assert "no `app:` section" in cli("app", "run", tmp_path / "intents.yaml", code=2).output  # a model spec
    assert "not an application directory" in cli("app", "ask", tmp_path, "hi", code=2).output
    bad = tmp_path / "bad.yaml"
    bad.write_text("app: {name: x}\nknowledge: {docs: [missing.jsonl]}\n", "utf-8")
    assert "do not exist" in cli("app", "run", bad, code=2).output
    bad.write_text("app: {name: x}\nknowledge: {docs: [faq.jsonl]}\nanswer: {mode: qa}\n", "utf-8")
    assert "answer.qa" in cli("app", "run", bad, code=2).output


def test_recommend_cli(tmp_path, tiny_bert):
    items = tmp_path / "items.jsonl"
    items.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in FAQ), "utf-8")
    recs = json.loads(cli("recommend", items, "-H", "card", "--model", tiny_bert, "--json", "--k", "5",
                          "--dedup", "1").output)
    assert [r["id"] for r in recs if r["id"] == "card"] == []  # the history's own item is not recommended
    assert len(recs) == 2 and all(set(r) == {"id", "text", "score", "because", "meta"} for r in recs)
    only_zh = json.loads(cli("recommend", items, "-H", "hotel", "--model", tiny_bert, "--json",
                             "--filter", "lang=zh").output)
    assert [r["id"] for r in only_zh] == ["card-zh"]
    assert "history is empty" in cli("recommend", items, "--model", tiny_bert, code=2).output
    assert "not key=value" in cli("recommend", items, "-H", "x", "--filter", "lang", "--model", tiny_bert,
                                  code=2).output


def test_app_serve_refuses_a_folder_that_is_no_application(tmp_path):
    out = cli("app", "serve", tmp_path, "--port", "0", code=2).output
    assert "not an application directory" in out and "lmkernel app run" in out
    assert "--rate-limit" in cli("app", "serve", "--help").output  # the server flags come from ServeSettings
