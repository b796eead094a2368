"""`lmkernel eval --data` on a CSV whose text holds an inch mark reads every row (issue 21 item 1)."""

import json

from typer.testing import CliRunner

from lmkernel.cli import app

runner = CliRunner()


def cli(*args, code=0):
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == code, result.output
    return result.output


def test_eval_reads_every_row_of_a_csv_with_a_literal_quote(spec_file, monkeypatch, tmp_path):
    monkeypatch.chdir(spec_file.parent)
    cli("run", spec_file, "-q", "--set", "train.precision=fp32", "--set", "train.epochs=1")
    q = tmp_path / "q.csv"
    q.write_text('text,label\nThe 5" screen is great,positive\ngood film,positive\nbad film,negative\n')
    out = cli("eval", spec_file.parent / "runs" / "tiny", "--data", q, "--out", tmp_path / "e", "--on-bad-rows", "skip")
    metrics = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert sum(metrics["eval"]["per_class"][c]["support"] for c in ("positive", "negative")) == 3, out
    assert not any(metrics["skipped_rows"].values())
