"""A tiny classifier trained in-test: its trust profile, its error analysis, and the flags on predictions."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from datakit import make_rows, write_csv

FOREIGN = "§§§ ¤¤¤ ¶¶¶ ### @@@ ~~~ ^^^ ||| ¦¦¦ ©©©"  # every character unknown to the tiny vocabulary


@pytest.fixture(scope="module")
def trained_run(tiny_bert, tmp_path_factory) -> Path:
    """The tiny BERT fine-tuned on the English/Chinese sentiment rows, with validation and test splits."""
    import lmkernel
    from lmkernel.spec import parse_spec

    root = tmp_path_factory.mktemp("calib-run")
    write_csv(root / "train.csv", make_rows(160, seed=1))
    write_csv(root / "dev.csv", make_rows(60, seed=2))
    write_csv(root / "test.csv", make_rows(40, seed=3))
    spec = parse_spec({"data": {"train": str(root / "train.csv"), "validation": str(root / "dev.csv"),
                                "test": str(root / "test.csv"), "max_length": 32},
                       "model": {"name": str(tiny_bert)}, "tuning": {"method": "full"},
                       "train": {"epochs": 3, "batch_size": 16, "lr": 3e-3}, "output": {"dir": str(root / "run")}})
    return lmkernel.run(spec, progress=False).run_dir


def test_profile_is_written_with_the_shared_schema(trained_run):
    from lmkernel.trust.profile import load_profile

    data = json.loads((trained_run / "model" / "trust.json").read_text(encoding="utf-8"))
    assert data["version"] == 1 and data["ood"]["method"] == "mahalanobis"
    assert set(data["low_confidence"]) == {"threshold", "how"} and data["ood"]["how"]
    ref = data["reference"]
    assert ref["n"] == 60 and set(ref["label_shares"]) == {"negative", "positive"}
    assert set(ref["script_shares"]) == {"latin", "han", "other"}
    assert sum(ref["confidence"]["shares"]) == pytest.approx(1, abs=1e-5)
    assert 0 <= ref["ood_rate"] <= 0.1  # 95 % of validation passes by construction
    assert data["ood"]["unknown_share"]["threshold"] >= 0.2  # the tiny vocabulary reads every validation text
    assert load_profile(trained_run / "model").needs_features


def test_predict_rows_carry_the_flags_and_foreign_text_is_ood(trained_run):
    import lmkernel

    model = lmkernel.load(trained_run)
    rows = model.predict(["the film was great", FOREIGN])
    assert all({"ood", "ood_score", "low_confidence"} <= set(r) for r in rows)
    assert rows[1]["ood"] is True and rows[1]["ood_score"] > model.trust.ood_threshold
    assert rows[1]["ood_score"] > rows[0]["ood_score"]
    half = "the film was great " + " ".join(FOREIGN.split()[:6])  # 6 unknown of 12 tokens: foreign by its vocabulary
    assert model.predict([half])[0]["ood"] is True


def test_errors_files_slices_calibration_in_the_run_report(trained_run):
    metrics = json.loads((trained_run / "metrics.json").read_text(encoding="utf-8"))
    for split in ("validation", "test"):
        m = metrics[split]
        assert 0 <= m["ece"] <= m["mce"] <= 1
        assert set(m["slices"]["script"]) == {"latin", "han"}
        assert sum(s["examples"] for s in m["slices"]["length"].values()) == m["examples"]
        assert (trained_run / "plots" / f"reliability_{split}.png").stat().st_size > 1000
    with open(trained_run / "errors.csv", encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    jsonl = [json.loads(line) for line in (trained_run / "errors.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(rows) == len(jsonl) == metrics["validation"]["errors"] + metrics["test"]["errors"]
    assert all(r["gold"] != r["predicted"] and 0 < float(r["confidence"]) <= 1 for r in rows)
    report = (trained_run / "report.md").read_text(encoding="utf-8")
    assert "## Errors" in report and "expected calibration error" in report and "script: han" in report


def test_eval_command_writes_the_error_analysis(trained_run, tmp_path):
    from lmkernel.pipeline import evaluate_run

    data = write_csv(tmp_path / "eval.csv", make_rows(30, seed=7))
    out = tmp_path / "eval"
    metrics = evaluate_run(trained_run, data, out, progress=False)
    assert "ece" in metrics["eval"] and (out / "errors.csv").is_file() and (out / "errors.jsonl").is_file()
    assert (out / "plots" / "reliability_eval.png").is_file()


def test_explain_hook_adds_explanations_of_the_shown_errors(tmp_path):
    from lmkernel.evaluation.analysis import ErrorAnalysis
    from lmkernel.evaluation.report import ReportInput, write_report

    errors = [{"split": "eval", "line": 2, "text": "the film was fine", "gold": "positive", "predicted": "negative",
               "confidence": 0.8}]
    analysis = ErrorAnalysis("eval", errors=errors, warnings=["the model predicts 'negative' for 100%"])
    r = ReportInput(title="t", labels=["negative", "positive"], metrics={"eval": {"accuracy": 0.5}},
                    analyses=[analysis])
    write_report(tmp_path, r, primary="eval",
                 explain_fn=lambda texts: [f"*fine* pushed toward it ({t})" for t in texts])
    report = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert "## Warnings" in report and "predicts 'negative'" in report
    assert "*fine* pushed toward it (the film was fine)" in report


def test_single_class_model_is_warned_in_report_and_log(tiny_bert, tmp_path, capsys):
    """lr 0 leaves the random head as it is: it answers one class for (nearly) everything."""
    import lmkernel
    from lmkernel.spec import parse_spec

    rows = [("the film was great", "positive")] * 30 + [("the film was awful", "negative")] * 30
    write_csv(tmp_path / "train.csv", rows)
    write_csv(tmp_path / "dev.csv", rows)
    spec = parse_spec({"data": {"train": str(tmp_path / "train.csv"), "validation": str(tmp_path / "dev.csv"),
                                "max_length": 16},
                       "model": {"name": str(tiny_bert)}, "train": {"epochs": 1, "batch_size": 32, "lr": 1e-9},
                       "output": {"dir": str(tmp_path / "run")}})
    run = lmkernel.run(spec, progress=False).run_dir
    assert "warning: validation:" in capsys.readouterr().out
    report = (run / "report.md").read_text(encoding="utf-8")
    assert "## Warnings" in report and ("for 100% of the 60 examples" in report or "chance" in report)
    # half the examples are wrong: the most confident errors are explained by word in report.md
    assert "**Why " in report and any(f"`{w}`" in report for w in ("the", "film", "was", "great", "awful"))
    assert "errors were not explained" not in capsys.readouterr().out
