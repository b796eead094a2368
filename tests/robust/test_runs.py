"""End to end on the tiny BERT: the adversarial/regularised objectives train a run, robustness is reported,
and bad options are refused with the spec key."""

from __future__ import annotations

import json
import math

import pytest
from typer.testing import CliRunner

from lmkernel.catalog import read_progress
from lmkernel.cli import app
from lmkernel.errors import LmkError
from lmkernel.pipeline import run
from lmkernel.spec import load_spec


@pytest.mark.parametrize("method,precision", [("fgm", "fp32"), ("pgd", "bf16"), ("freelb", "fp32")])
def test_a_run_trains_with_each_adversarial_method(spec_file, monkeypatch, method, precision):
    monkeypatch.chdir(spec_file.parent)
    spec = load_spec(spec_file, [f"train.adversarial={{method: {method}, epsilon: 0.01, alpha: 0.005}}",
                                 "train.rdrop=1.0", "train.label_smoothing=0.1", f"train.precision={precision}",
                                 "train.epochs=1", f"output.dir=runs/{method}"])
    result = run(spec, progress=False)
    metrics = json.loads((result.run_dir / "metrics.json").read_text())
    training = metrics["training"]
    assert training["precision"] == ("bf16" if precision == "bf16" else "no")
    assert training["adversarial batches"] == training["optimizer steps"] > 0
    assert training["adversarial passes skipped (non-finite loss)"] == 0
    losses = [e["train_loss"] for e in read_progress(result.run_dir) if e["event"] == "train"]
    assert math.isfinite(metrics["validation"]["loss"]) and metrics["validation"]["accuracy"] >= 0.5
    assert losses and all(math.isfinite(x) for x in losses)


def test_adversarial_warmup_is_honoured_in_a_run(spec_file, monkeypatch):
    monkeypatch.chdir(spec_file.parent)
    spec = load_spec(spec_file, ["train.adversarial={method: fgm, warmup_steps: 7}", "train.epochs=1"])
    training = json.loads((run(spec, progress=False).run_dir / "metrics.json").read_text())["training"]
    assert training["adversarial batches"] == training["optimizer steps"] - 7


def test_robustness_report_in_a_run_and_in_eval(spec_file, monkeypatch):
    monkeypatch.chdir(spec_file.parent)
    spec = load_spec(spec_file, ["train.robustness=true", "train.epochs=2"])
    result = run(spec, progress=False)
    rob = json.loads((result.run_dir / "metrics.json").read_text())["validation"]["robustness"]
    assert rob["rows"] == 40 and 0 <= rob["clean"] <= 1
    assert rob["typo"]["changed"] > 0.5 and rob["typo"]["accuracy"] is not None
    assert rob["zh_traditional"]["changed"] > 0  # a third of the tiny data is Chinese
    assert "## Robustness (validation" in (result.run_dir / "report.md").read_text()
    cli = CliRunner().invoke(app, ["eval", str(result.run_dir), "--data", "data/test.csv", "--out", "ev",
                                   "--robustness", "-q"])
    assert cli.exit_code == 0, cli.output
    got = json.loads((spec_file.parent / "ev" / "metrics.json").read_text())["eval"]["robustness"]
    assert set(got) >= {"clean", "typo", "synonym", "zh_traditional", "zh_fullwidth", "zh_confusable"}
    assert "| typo |" in (spec_file.parent / "ev" / "report.md").read_text()


@pytest.mark.parametrize("override,needle", [
    ("train.adversarial=fgn", "train.adversarial.method"),
    ("train.adversarial={method: pgd, epsilon: -1}", "train.adversarial.epsilon"),
    ("train.adversarial={method: pgd, steps: 0}", "train.adversarial.steps"),
    ("train.rdrop=-0.5", "train.rdrop"),
    ("train.label_smoothing=1.0", "train.label_smoothing"),
])
def test_bad_options_name_their_key(spec_file, override, needle):
    with pytest.raises(LmkError) as err:
        load_spec(spec_file, [override])
    assert needle in str(err.value)


@pytest.mark.parametrize("override", ["train.adversarial=fgm", "train.rdrop=1", "train.robustness=true"])
def test_options_refused_for_other_tasks(spec_file, override):
    with pytest.raises(LmkError, match="not available for task 'qa'|for classification, not 'qa'"):
        load_spec(spec_file, ["task.type=qa", override])


def test_the_builder_refuses_a_task_it_does_not_know(spec_file):
    from lmkernel.tasks import get_task
    from lmkernel.training.robust import build_objective

    opts = load_spec(spec_file, ["train.label_smoothing=0.1"]).train
    with pytest.raises(LmkError, match="train.label_smoothing=0.1: not available for task 'qa'"):
        build_objective(opts, get_task("qa", None))
    plain_opts = load_spec(spec_file).train
    base = object()
    assert build_objective(plain_opts, get_task("qa", None), base=base) is base  # nothing asked: the base
