"""A tiny end-to-end run: the small-data rule's values and the class weights in report.md and spec.yaml."""

from __future__ import annotations

import json

from lmkernel.pipeline import run
from lmkernel.spec import load_spec


def test_a_run_reports_and_records_what_the_rule_chose(spec_file, monkeypatch):
    monkeypatch.chdir(spec_file.parent)
    text = spec_file.read_text(encoding="utf-8")
    spec_file.write_text(text.replace("train: {epochs: 3, batch_size: 16, lr: 3e-3, log_every: 2}",
                                      "train: {epochs: 2, log_every: 50, class_weights: balanced}"), encoding="utf-8")
    result = run(load_spec(spec_file), progress=False)
    report = (result.run_dir / "report.md").read_text(encoding="utf-8")
    # 160 training rows: batch 8 gives 20 steps an epoch; the spec's 2 epochs are 40 steps, far below the
    # rule's 300, so the learning rate is raised to its cap, 2x full fine-tuning's 1e-4
    assert ("| small-data rule | train.batch_size 8, train.lr 0.0002, train.checkpoint_every 100 (auto: 160 "
            "training rows, 2 labels -> 40 optimizer steps") in report
    assert "set in the spec: train.epochs)" in report
    assert "| batch size | 8 |" in report and "| learning rate | 0.0002 |" in report
    assert "| class weights | balanced: negative " in report
    saved = load_spec(result.run_dir / "spec.yaml")  # what --resume and `lmkernel inspect` read
    assert (saved.train.batch_size, saved.train.epochs, saved.train.lr) == (8, 2, 2e-4)
    metrics = json.loads((result.run_dir / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["training"]["optimizer steps"] == 40
