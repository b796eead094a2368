"""Chinese as users write it: mixed scripts, traditional characters, full-width punctuation and emoji go
through training, the report, predict and the server without loss or error."""

from __future__ import annotations

import csv
import json
import time

from typer.testing import CliRunner

from lmkernel.cli import app

TEXTS = [("房間很乾淨，服務一流！👍", "positive"), ("iPhone１５的屏幕太差了😡", "negative"),
         ("性价比很高，推荐～", "positive"), ("質量糟糕，失望。。。", "negative"),
         ("Great 酒店，下次再来 🙂", "positive"), ("ＡＢＣ公司的客服很差!!", "negative")]


def test_mixed_scripts_train_report_predict_and_serve(tmp_path, tiny_bert, monkeypatch):
    from fastapi.testclient import TestClient

    import lmkernel
    from lmkernel.serve.app import create_app
    from lmkernel.serve.predictor import ClassifierPredictor
    from lmkernel.serve.settings import ServeSettings

    monkeypatch.chdir(tmp_path)
    with open(tmp_path / "train.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["text", "label"])
        w.writerows(TEXTS * 6)
    (tmp_path / "spec.yaml").write_text(f"data: {{train: train.csv}}\nmodel: {{name: {tiny_bert}}}\n"
                                        "train: {epochs: 1, batch_size: 8, precision: fp32}\n"
                                        "output: {dir: runs/zh}\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["run", "spec.yaml", "-q"])
    assert result.exit_code == 0, result.output
    report = (tmp_path / "runs" / "zh" / "report.md").read_text(encoding="utf-8")
    assert "| train | 36 | 0 |" in report  # every row read: no emoji or full-width row was lost
    assert "Words that mark each label" in report
    model = lmkernel.load(tmp_path / "runs" / "zh")
    texts = [t for t, _ in TEXTS]
    local = model.predict(texts)
    assert [r["text"] for r in local] == texts
    assert all(abs(sum(r["probabilities"].values()) - 1) < 1e-5 for r in local)
    cli = CliRunner().invoke(app, ["predict", str(tmp_path / "runs" / "zh"), *texts, "--json"])
    assert cli.exit_code == 0, cli.output
    from_cli = [json.loads(line) for line in cli.output.splitlines() if line.startswith("{")]
    assert [r["label"] for r in from_cli] == [r["label"] for r in local]
    app_ = create_app(ServeSettings(max_wait_ms=2), task="classification", load=lambda: ClassifierPredictor(model))
    with TestClient(app_) as client:
        for _ in range(200):  # the model loads in a background thread
            if client.get("/readyz").status_code == 200:
                break
            time.sleep(0.05)
        served = client.post("/v1/classify", json={"texts": texts}).json()
    got = served.get("results") or served.get("predictions") or served
    assert [r["label"] for r in got] == [r["label"] for r in local]
