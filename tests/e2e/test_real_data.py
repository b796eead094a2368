"""The shared real data sets read cleanly, and (slow) the real MiniLM trains on them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lmkernel.spec import DataSpec
from lmkernel.tasks import get_task

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
REPO = Path(__file__).resolve().parents[2]
needs_shared = pytest.mark.skipif(not SHARED.exists(), reason="../shared/data is not beside the checkout")


@needs_shared
@pytest.mark.parametrize("path,text,rows,labels", [
    ("sst2/train.tsv", "sentence", 67349, ["0", "1"]),
    ("sst2/dev.tsv", "sentence", 872, ["0", "1"]),
    ("chnsenticorp/train.tsv", "text_a", 9600, ["0", "1"]),
    ("chnsenticorp/dev.tsv", "text_a", 1200, ["0", "1"]),
])
def test_shared_classification_files_read_without_bad_rows(path, text, rows, labels):
    task = get_task("classification")
    ds = task.read(SHARED / path, DataSpec(train=SHARED / path, text_column=text), None)
    assert len(ds.examples) == rows and not ds.bad
    assert task.infer_labels(ds.examples) == labels


@pytest.mark.slow
def test_lora_on_real_minilm_trains_under_two_percent():
    from lmkernel.models import resolve_model_path
    from lmkernel.tuning import apply_tuning, count_parameters

    model = get_task("classification").build_model(resolve_model_path("minilm"), ["0", "1"])
    trainable, total = count_parameters(apply_tuning(model, "lora"))
    assert 0.005 < trainable / total <= 0.02


@pytest.mark.slow
def test_demo_spec_on_real_minilm(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from lmkernel.cli import app

    monkeypatch.chdir(tmp_path)
    out = CliRunner().invoke(app, ["run", str(REPO / "examples" / "sentiment.yaml"), "-q"])
    assert out.exit_code == 0, out.output
    metrics = json.loads((tmp_path / "runs" / "sentiment" / "metrics.json").read_text())
    assert metrics["accuracy"] > 0.85 and metrics["test"]["accuracy"] > 0.8


@needs_shared
@pytest.mark.slow
def test_chnsenticorp_end_to_end(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from lmkernel.cli import app

    monkeypatch.chdir(tmp_path)
    out = CliRunner().invoke(app, ["run", str(REPO / "examples" / "chnsenticorp.yaml"), "-q",
                                   "--set", f"output.dir={tmp_path / 'c'}", "--set", "train.max_steps=150",
                                   "--set", "data.max_length=128"])
    assert out.exit_code == 0, out.output
    # MiniLM's English vocabulary maps ~63% of ChnSentiCorp's tokens to [UNK]: the run must say so,
    # and still learn what the known characters carry
    assert "tokens are unknown" in out.output
    assert "the tokenizer cannot read much" in (tmp_path / "c" / "report.md").read_text()
    assert json.loads((tmp_path / "c" / "metrics.json").read_text())["accuracy"] > 0.58
