"""End-to-end: every CLI command on a tiny random BERT."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lmkernel.cli import app

runner = CliRunner()


def cli(*args: str, code: int = 0):
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, result.output
    return result


@pytest.fixture()
def run_dir(spec_file, monkeypatch) -> Path:
    monkeypatch.chdir(spec_file.parent)
    out = cli("run", str(spec_file), "-q", "--set", "train.precision=fp32")
    assert "report:" in out.output and "validation: accuracy=" in out.output
    return spec_file.parent / "runs" / "tiny"


def test_run_writes_artifact_metrics_report_and_plots(run_dir):
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert {"accuracy", "macro_f1", "validation", "test", "trainable_params"} <= set(metrics)
    assert metrics["accuracy"] > 0.8  # the tiny model learns the synthetic task
    assert set(metrics["validation"]["per_class"]) == {"negative", "positive"}
    report = (run_dir / "report.md").read_text()
    for part in ("Trainable parameters", "train samples/s", "| positive |", "plots/loss.png"):
        assert part in report
    marks = next(line for line in report.splitlines() if line.startswith("| negative | "))
    assert any(w in marks for w in ("awful", "terrible", "boring", "bad", "horrible", "poor", "太差", "失望"))
    for png in ("loss.png", "confusion_validation.png", "confusion_test.png"):
        assert (run_dir / "plots" / png).read_bytes()[:4] == b"\x89PNG"
    assert list((run_dir / "tensorboard").glob("events.out.tfevents.*"))
    assert (run_dir / "spec.yaml").exists()
    assert not (run_dir / "checkpoints").exists()  # optimizer state dropped at the end
    files = {p.name for p in (run_dir / "model").iterdir()}
    assert {"model.safetensors", "config.json", "lmkernel.json", "tokenizer.json"} <= files


def test_predict_cli_python_and_plain_transformers(run_dir, tmp_path):
    out = cli("predict", str(run_dir), "the film was great", "房间太差", "--json")
    rows = [json.loads(line) for line in out.output.strip().splitlines()]
    assert [r["label"] for r in rows] == ["positive", "negative"]
    assert abs(sum(rows[0]["probabilities"].values()) - 1) < 1e-5

    import lmkernel

    model = lmkernel.load(run_dir)
    assert model.predict(["the film was great"])[0]["label"] == "positive"

    from transformers import AutoModelForSequenceClassification

    plain = AutoModelForSequenceClassification.from_pretrained(run_dir / "model")
    assert plain.config.id2label == {0: "negative", 1: "positive"}

    inp = tmp_path / "in.jsonl"
    inp.write_text('{"text": "the hotel was awful"}\n{"text": "服务很好"}\n', encoding="utf-8")
    cli("predict", str(run_dir), "--input", str(inp), "--output", str(tmp_path / "out.jsonl"))
    got = [json.loads(x)["label"] for x in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert got == ["negative", "positive"]


def test_eval_writes_report_for_new_data(run_dir, data_dir, tmp_path):
    out = cli("eval", str(run_dir), "--data", str(data_dir / "test.csv"), "--out", str(tmp_path / "ev"), "-q")
    assert "eval: accuracy=" in out.output
    m = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    ref = json.loads((run_dir / "metrics.json").read_text())["test"]
    assert m["accuracy"] == pytest.approx(ref["accuracy"])
    assert (tmp_path / "ev" / "report.md").exists() and (tmp_path / "ev" / "plots" / "confusion_eval.png").exists()


def test_inspect_spec_and_run(run_dir, spec_file):
    out = cli("inspect", str(spec_file), "--set", "train.epochs=5")
    assert "epochs: 5" in out.output and "warmup_ratio" in out.output
    card = json.loads(cli("inspect", str(run_dir)).output)
    assert card["labels"] == ["negative", "positive"] and card["weights"] == "full"


def test_second_run_never_overwrites_the_first(run_dir, spec_file):
    cli("run", str(spec_file), "-q", "--set", "train.epochs=1", "--set", "train.precision=fp32")
    assert (run_dir.parent / "tiny-2" / "model").exists()
    assert (run_dir / "model").exists()


def test_same_seed_same_metrics(spec_file, monkeypatch):
    monkeypatch.chdir(spec_file.parent)
    a = cli("run", str(spec_file), "-q", "--set", "output.dir=a", "--set", "train.precision=fp32")
    b = cli("run", str(spec_file), "-q", "--set", "output.dir=b", "--set", "train.precision=fp32")
    ma = json.loads((spec_file.parent / "a" / "metrics.json").read_text())
    mb = json.loads((spec_file.parent / "b" / "metrics.json").read_text())
    assert ma["validation"]["loss"] == mb["validation"]["loss"]
    assert a.exit_code == b.exit_code == 0


@pytest.mark.parametrize("merge", [False, True])
def test_lora_artifact_loads_in_peft_and_transformers(spec_file, monkeypatch, merge, tiny_bert):
    monkeypatch.chdir(spec_file.parent)
    cli("run", str(spec_file), "-q", "--set", "tuning.method=lora", "--set", f"tuning.merge={str(merge).lower()}",
        "--set", "output.dir=lora", "--set", "train.precision=fp32")
    run = spec_file.parent / "lora"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["trainable_params"] < metrics["total_params"]
    import lmkernel

    ours = lmkernel.load(run).predict(["the film was great"])[0]["probabilities"]
    from transformers import AutoModelForSequenceClassification

    if merge:
        plain = AutoModelForSequenceClassification.from_pretrained(run / "model")
        adapter_dir = run / "model" / "adapter"
    else:
        assert not (run / "model" / "model.safetensors").exists()  # adapter only: small
        plain = None
        adapter_dir = run / "model"
    from peft import PeftModel

    base = AutoModelForSequenceClassification.from_pretrained(tiny_bert, num_labels=2)
    peft_model = PeftModel.from_pretrained(base, adapter_dir).eval()
    import torch

    tok = lmkernel.load(run).tokenizer
    batch = tok(["the film was great"], return_tensors="pt")
    with torch.no_grad():
        p = torch.softmax(peft_model(**batch).logits, -1)[0, 1].item()
        if plain is not None:
            assert torch.softmax(plain.eval()(**batch).logits, -1)[0, 1].item() == pytest.approx(p, abs=1e-5)
    assert ours["positive"] == pytest.approx(p, abs=1e-5)


def test_freeze_run(spec_file, monkeypatch):
    monkeypatch.chdir(spec_file.parent)
    cli("run", str(spec_file), "-q", "--set", "tuning.method=freeze", "--set", "tuning.freeze.train_top_layers=1",
        "--set", "output.dir=fz", "--set", "train.epochs=1")
    m = json.loads((spec_file.parent / "fz" / "metrics.json").read_text())
    assert 0 < m["trainable_params"] < m["total_params"]


def test_split_ratio_and_skip_bad_rows(spec_file, data_dir, monkeypatch):
    monkeypatch.chdir(spec_file.parent)
    with open(data_dir / "train.csv", "ab") as fh:
        fh.write(b",positive\n\xff\xfe,negative\n")
    cli("run", str(spec_file), "-q", "--set", "data.validation=null", "--set", "data.split.validation=0.25",
        "--set", "data.on_bad_rows=skip", "--set", "output.dir=sp", "--set", "train.epochs=1")
    m = json.loads((spec_file.parent / "sp" / "metrics.json").read_text())
    assert m["validation"]["examples"] == 40 and m["skipped_rows"] == {"train": 2}
    assert "Skipped rows" in (spec_file.parent / "sp" / "report.md").read_text()


def test_early_stopping_and_eval_every(spec_file, monkeypatch):
    monkeypatch.chdir(spec_file.parent)
    cli("run", str(spec_file), "-q", "--set", "train.eval_every=2", "--set", "train.patience=1",
        "--set", "train.lr=1e-9", "--set", "train.epochs=5", "--set", "output.dir=es", "--set", "train.metric=loss")
    m = json.loads((spec_file.parent / "es" / "metrics.json").read_text())
    assert m["training"]["stopped early"] is True and m["training"]["optimizer steps"] < 50


@pytest.mark.parametrize("args,message", [
    (["--set", "train.epoch=1"], "did you mean train.epochs?"),
    (["--set", "model.name=/nonexistent/model"], "neither a known alias nor an existing directory"),
    (["--set", "data.train=missing.csv"], "data file not found"),
    (["--set", "train.metric=bleu"], "train.metric 'bleu' is not computed"),
])
def test_user_errors_exit_2_without_traceback(spec_file, monkeypatch, args, message):
    monkeypatch.chdir(spec_file.parent)
    out = cli("run", str(spec_file), "-q", "--set", "train.epochs=1", *args, code=2)
    assert message in out.output and "Traceback" not in out.output


def test_artifact_errors(tmp_path):
    out = cli("predict", str(tmp_path / "nope"), "x", code=2)
    assert "no such run or model directory" in out.output
    (tmp_path / "run" / "model").mkdir(parents=True)
    (tmp_path / "run" / "model" / "lmkernel.json").write_text("{broken", encoding="utf-8")
    assert "unreadable" in cli("predict", str(tmp_path / "run"), "x", code=2).output


def test_corrupt_weights_give_clear_error(run_dir):
    (run_dir / "model" / "model.safetensors").write_bytes(b"garbage")
    out = cli("predict", str(run_dir), "x", code=2)
    assert "cannot load model weights" in out.output


@pytest.mark.parametrize("command", ["run", "train", "eval", "predict", "inspect", "validate", "fields",
                                     "compress", "compare", "runs"])
def test_help_explains_every_option(command):
    out = cli(command, "--help").output
    assert "Usage" in out
    for line in out.splitlines():
        if line.strip().startswith("│ --") and "--help" not in line:
            assert len(line.split()) > 3, f"option without help: {line}"


def test_validate_reports_ok_and_errors(spec_file, tmp_path):
    assert "ok" in cli("validate", str(spec_file)).output
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: {train: a.csv}\ntrain: {epoch: 1, lr: fast}\n", encoding="utf-8")
    out = cli("validate", str(bad), code=2).output
    assert "2 problem(s)" in out and "train.epochs" in out and "train.lr" in out
