"""`lmkernel monitor`, `lmkernel alerts` and `lmkernel audit verify` end to end on a tiny run."""

from __future__ import annotations

import json

import yaml
from trust_helpers import EN
from typer.testing import CliRunner

from lmkernel.cli import app

runner = CliRunner()
ZH = ["这部电影很好看", "剧情太无聊了", "演员表演非常出色"]
RULES = """rules:
  - name: language_shift
    metric: drift
    feature: script
    value: 0.2
    over: 5m
    min_count: 100
"""


def _feed(path, n_en=300, n_zh=200):
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(n_en + n_zh):
            shifted = i >= n_en and i % 5 == 0  # then 20 % of the traffic is Chinese
            text = ZH[i % 3] if shifted else EN[i % len(EN)] + f" mail{i}@example.com"
            fh.write(json.dumps({"text": text, "ts": 1_800_000_000 + i * 0.5}, ensure_ascii=False) + "\n")


def test_monitor_replay_alerts_and_audits(tmp_path, tiny_cls_run):
    _feed(tmp_path / "feed.jsonl")
    (tmp_path / "alerts.yaml").write_text(RULES)
    audit = tmp_path / "audit.jsonl"
    args = ["monitor", str(tiny_cls_run), "--input", str(tmp_path / "feed.jsonl"), "--alerts",
            str(tmp_path / "alerts.yaml"), "--time-field", "ts", "--audit-log", str(audit), "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    lines = [json.loads(x) for x in result.output.strip().splitlines()]
    alerts, summary = lines[:-1], lines[-1]["summary"]
    assert [a["status"] for a in alerts] == ["firing"]
    assert alerts[0]["labels"]["alertname"] == "language_shift" and 300 < alerts[0]["record"] <= 500
    assert summary["records"] == 500 and summary["alerts_fired"] == 1
    again = runner.invoke(app, args[:-3] + ["--json"])  # a replay with the feed's clock alerts identically
    assert [json.loads(x)["record"] for x in again.output.strip().splitlines()[:-1]] == [alerts[0]["record"]]

    assert "example.com" not in audit.read_text()
    ok = runner.invoke(app, ["audit", "verify", str(audit)])
    assert ok.exit_code == 0 and "OK: 501 line(s)" in ok.output
    text = audit.read_text().splitlines()
    text[10] = text[10].replace('"label":"', '"label":"x')
    audit.write_text("\n".join(text) + "\n")
    bad = runner.invoke(app, ["audit", "verify", str(audit)])
    assert bad.exit_code == 1 and ":11: changed" in bad.output


def test_monitor_plain_text_stdin_summary(tiny_cls_run):
    result = runner.invoke(app, ["monitor", str(tiny_cls_run), "--input", "-", "--rate", "10"],
                           input="good film\nboring\n")
    assert result.exit_code == 0, result.output
    assert "2 record(s); 0 alert(s) fired" in result.output


def test_monitor_bad_feed_line(tmp_path, tiny_cls_run):
    (tmp_path / "feed.jsonl").write_text('{"body": "x"}\n')
    result = runner.invoke(app, ["monitor", str(tiny_cls_run), "--input", str(tmp_path / "feed.jsonl")])
    assert result.exit_code == 2 and "no text in 'text'" in result.output and "feed.jsonl:1" in result.output


def test_alerts_check_export_and_bad_file(tmp_path):
    rules = tmp_path / "alerts.yaml"
    rules.write_text(RULES)
    assert "language_shift: drift(script) > 0.2 over 5m" in runner.invoke(app, ["alerts", "check", str(rules)]).output
    out = tmp_path / "prom.yaml"
    assert runner.invoke(app, ["alerts", "export", str(rules), "--out", str(out)]).exit_code == 0
    rule = yaml.safe_load(out.read_text())["groups"][0]["rules"][0]
    assert rule["alert"] == "language_shift" and rule["expr"].startswith('lmk_drift{feature="script"')
    rules.write_text("rules:\n  - {name: x, metric: drift, value: 0.2}\n")
    bad = runner.invoke(app, ["alerts", "check", str(rules)])
    assert bad.exit_code == 2 and "needs `feature`" in bad.output


def test_monitor_guard_redacts_before_scoring_and_counts_hits(tmp_path, tiny_cls_run):
    """--guard: the model, the monitor and the audit log see the redacted text; a guard rule fires on the
    PII share as it would in the server."""
    _feed(tmp_path / "feed.jsonl", n_en=120, n_zh=0)  # every English line carries an e-mail address
    (tmp_path / "guard.yaml").write_text("guard:\n  pii: {action: redact}\n")
    (tmp_path / "alerts.yaml").write_text("rules:\n  - {name: pii_traffic, metric: guard_rate, guard: email, "
                                          "op: '>', value: 0.5, over: 5m, min_count: 50}\n")
    audit = tmp_path / "audit.jsonl"
    result = runner.invoke(app, ["monitor", str(tiny_cls_run), "--input", str(tmp_path / "feed.jsonl"),
                                 "--time-field", "ts", "--guard", str(tmp_path / "guard.yaml"), "--alerts",
                                 str(tmp_path / "alerts.yaml"), "--audit-log", str(audit), "--json"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(x) for x in result.output.strip().splitlines()]
    assert [a["labels"]["alertname"] for a in lines[:-1]] == ["pii_traffic"]
    assert "[EMAIL]" in audit.read_text() and "example.com" not in audit.read_text()
    unguarded = runner.invoke(app, ["monitor", str(tiny_cls_run), "--input", str(tmp_path / "feed.jsonl"),
                                    "--time-field", "ts", "--alerts", str(tmp_path / "alerts.yaml"), "--json"])
    assert len(unguarded.output.strip().splitlines()) == 1  # no guard, no guard hits: only the summary
