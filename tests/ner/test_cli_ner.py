"""End to end on tiny_bert: lmkernel run / eval / predict with task: ner, and the Python API."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ner_data import make_sentences, write_conll

from tests.clikit import cli


@pytest.fixture()
def ner_run(ner_spec, monkeypatch) -> Path:
    monkeypatch.chdir(ner_spec.parent)
    out = cli("run", str(ner_spec), "-q")
    assert "validation: f1=" in out.output and "test: f1=" in out.output
    return ner_spec.parent / "runs" / "ner"


def test_run_eval_predict(ner_run, tmp_path):
    metrics = json.loads((ner_run / "metrics.json").read_text())
    assert metrics["f1"] > 0.9  # the tiny model learns the synthetic entities
    assert set(metrics["test"]["per_class"]) == {"PLACE", "WORK"}
    assert {"f1", "precision", "recall", "loss"} <= set(metrics["validation"])
    report = (ner_run / "report.md").read_text()
    assert "| PLACE |" in report and "| WORK |" in report
    card = json.loads((ner_run / "model" / "lmkernel.json").read_text())
    assert card["labels"] == ["O", "B-PLACE", "B-WORK", "I-PLACE", "I-WORK"]
    assert card["task_options"] == {"tag_column": -1, "tag_scheme": "auto"}

    data = write_conll(tmp_path / "new.conll", make_sentences(24, seed=9))
    out = cli("eval", str(ner_run), "--data", str(data), "--out", str(tmp_path / "ev"), "-q")
    assert "eval: f1=" in out.output
    assert json.loads((tmp_path / "ev" / "metrics.json").read_text())["eval"]["per_class"]["PLACE"]["support"] > 0

    out = cli("predict", str(ner_run), "--text", "the hotel room was lovely", "电影很好")
    rows = [json.loads(line) for line in out.output.strip().splitlines()]
    assert [r["text"] for r in rows] == ["电影很好", "the hotel room was lovely"]  # positional first, then --text
    zh, en = rows
    assert [(e["type"], e["text"], e["start"], e["end"]) for e in en["entities"]] == [("PLACE", "hotel room", 4, 14)]
    assert [(e["type"], e["text"], e["start"], e["end"]) for e in zh["entities"]] == [("WORK", "电影", 0, 2)]
    assert 0.5 < en["entities"][0]["score"] <= 1.0

    import lmkernel

    (pred,) = lmkernel.load(ner_run).predict("the book was boring")
    assert [(e["type"], e["text"]) for e in pred["entities"]] == [("WORK", "book")]


def test_bad_data_exits_2_naming_file_and_line(ner_spec, monkeypatch):
    monkeypatch.chdir(ner_spec.parent)
    dev = ner_spec.parent / "data" / "dev.conll"
    dev.write_text("the O\nfilm B-PERSON\n", encoding="utf-8")
    out = cli("run", str(ner_spec), "-q", code=2)
    assert "'B-PERSON' does not occur in the training data" in out.output and f"{dev} line 2" in out.output
    out = cli("run", str(ner_spec), "-q", "--set", "data.on_bad_rows=skip", "--set", "train.epochs=1")
    run_dir = Path(next(line for line in out.output.splitlines() if line.startswith("run:")).split(None, 1)[1])
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["skipped_rows"] == {"validation": 1}


def test_ner_options_are_validated(ner_spec, monkeypatch):
    monkeypatch.chdir(ner_spec.parent)
    out = cli("validate", str(ner_spec), "--set", "task.tag_scheme=bioes", code=2)
    assert "tag_scheme" in out.output
    cli("validate", str(ner_spec), "--set", "task.tag_scheme=iob1", "--set", "task.tag_column=2")


def test_lora_run_predicts_spans(ner_spec, monkeypatch):
    monkeypatch.chdir(ner_spec.parent)
    out = cli("run", str(ner_spec), "-q", "--set", "tuning.method=lora", "--set", "train.lr=2e-2")
    run_dir = Path(next(line for line in out.output.splitlines() if line.startswith("run:")).split(None, 1)[1])
    import lmkernel

    model = lmkernel.load(run_dir)
    assert model.card["weights"] == "adapter"
    (pred,) = model.predict(["the film was good"])
    assert set(pred) == {"text", "entities"}


@pytest.mark.slow
def test_example_spec_on_minilm(tmp_path, monkeypatch):
    """examples/ner.yaml on the real MiniLM: English and Chinese entities with exact offsets."""
    monkeypatch.chdir(tmp_path)
    spec = Path(__file__).resolve().parents[2] / "examples" / "ner.yaml"
    out = cli("run", str(spec), "-q", "--set", f"output.dir={tmp_path / 'run'}")
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["test"]["f1"] > 0.8, out.output
    import lmkernel

    en, zh = lmkernel.load(tmp_path / "run").predict(["Maria Garcia works for Siemens in Berlin .", "张伟去了上海。"])
    assert {(e["type"], e["text"]) for e in en["entities"]} == {("PER", "Maria Garcia"), ("ORG", "Siemens"),
                                                                ("LOC", "Berlin")}
    assert {(e["type"], e["text"], e["start"], e["end"]) for e in zh["entities"]} == {("PER", "张伟", 0, 2),
                                                                                      ("LOC", "上海", 4, 6)}
