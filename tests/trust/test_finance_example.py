"""The finance monitor example: its specs validate, the feed is seeded and has its burst, the webhook
receiver prints what it is sent and stops cleanly on Ctrl-C."""

from __future__ import annotations

import importlib.util
import json
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
FINANCE = REPO / "examples" / "finance"
SHARED = REPO.parent / "shared" / "data"
SPECS = [FINANCE / "sentiment-en.yaml", FINANCE / "sentiment-zh.yaml", REPO / "examples" / "zh" / "minilm-zh.yaml",
         REPO / "examples" / "guards" / "offensive-en.yaml", REPO / "examples" / "guards" / "offensive-zh.yaml"]


def _module(name: str):
    spec = importlib.util.spec_from_file_location(f"finance_{name}", FINANCE / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _pools() -> dict:
    def pool(lang: str) -> dict:
        return {lab: [f"{lang} {lab} {i}" for i in range(n)]
                for lab, n in (("negative", 10), ("neutral", 60), ("positive", 30))}
    return {"en": pool("en"), "zh": pool("zh")}


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.name)
def test_example_specs_validate(path):
    from typer.testing import CliRunner

    from lmkernel.cli import app

    out = CliRunner().invoke(app, ["validate", str(path), "--no-data"])
    assert out.exit_code == 0, out.output
    assert "ok" in out.output


def test_alert_rules_name_a_metric_a_comparison_and_a_window():
    rules = yaml.safe_load((FINANCE / "alerts.yaml").read_text())["rules"]
    assert {r["name"] for r in rules} >= {"negative_burst", "ood_spike"}
    for r in rules:
        assert r["op"] in (">", "<") and isinstance(r["value"], float) and r["over"].endswith("m")
    burst = next(r for r in rules if r["name"] == "negative_burst")
    assert (burst["metric"], burst["label"]) == ("share", "negative")


def test_alert_rules_load_with_the_monitors_loader():
    from lmkernel.trust.alerts import load_rules

    rules = load_rules(FINANCE / "alerts.yaml")
    assert [r.name for r in rules][:2] == ["negative_burst", "ood_spike"] and rules[0].over == "5m"


def test_feed_is_seeded_and_the_burst_raises_the_negative_share(tmp_path):
    feed = _module("make_feed")
    rows = feed.build_feed(_pools(), seed=3, stationary_min=30, burst_min=10, per_min=50)
    assert rows == feed.build_feed(_pools(), seed=3, stationary_min=30, burst_min=10, per_min=50)
    assert rows != feed.build_feed(_pools(), seed=4, stationary_min=30, burst_min=10, per_min=50)
    assert len(rows) == 2000 and [r["ts"] for r in rows] == sorted(r["ts"] for r in rows)
    assert set(rows[0]) == {"ts", "text", "source"}
    cut = feed.START + 30 * 60

    def negative_share(part):
        return sum(" negative " in r["text"] for r in part) / len(part)
    before = [r for r in rows if r["ts"] < cut]
    after = [r for r in rows if r["ts"] >= cut]
    assert len(before) == 1500 and len(after) == 500
    assert negative_share(before) < 0.2 and negative_share(after) > 0.4
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    feed.write_feed(rows, a)
    feed.write_feed(feed.build_feed(_pools(), seed=3), b)
    assert a.read_bytes() == b.read_bytes()


def test_language_switch_only_in_the_burst():
    feed = _module("make_feed")
    rows = feed.build_feed(_pools(), seed=0, stationary_min=5, burst_min=5, per_min=40, zh_share=0.5)
    cut = feed.START + 5 * 60
    assert all(r["source"] == "newswire" for r in rows if r["ts"] < cut)
    zh = sum(r["source"] == "stock-forum" for r in rows if r["ts"] >= cut)
    assert 60 < zh < 140  # about half of the 200 burst lines


def test_window_shares_per_five_minutes():
    shares = _module("window_shares").window_shares(
        [{"ts": 100.0}, {"ts": 200.0}, {"ts": 450.0}, {"ts": 500.0}], ["negative", "neutral", "negative", "negative"],
        "negative", 300)
    assert shares == [{"start": 100.0, "n": 2, "share": 0.5}, {"start": 400.0, "n": 2, "share": 1.0}]


def _post(url: str, body: bytes) -> tuple[int, dict]:
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_webhook_prints_each_post_and_stops_on_ctrl_c():
    proc = subprocess.Popen([sys.executable, str(FINANCE / "webhook.py"), "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = proc.stdout.readline()
        assert first.startswith("listening on http://127.0.0.1:")
        url = first.split()[-1] + "alerts"
        alert = {"rule": "negative_burst", "value": 0.46, "text": "股价暴跌"}
        assert _post(url, json.dumps(alert).encode()) == (200, {"ok": True})
        assert json.loads(proc.stdout.readline()) == {"path": "/alerts", "alert": alert}
        assert _post(url, b"{not json")[0] == 400
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.slow
@pytest.mark.skipif(not SHARED.exists(), reason="../shared/data is not beside the checkout")
def test_prepare_and_feed_on_the_real_data(tmp_path):
    counts = _module("prepare").prepare(SHARED, tmp_path, seed=13)
    assert counts["en-test.jsonl"] == 484 and counts["zh-test.jsonl"] == 2020
    rows = [json.loads(x) for x in (tmp_path / "en-train.jsonl").read_text().splitlines()]
    assert {r["label"] for r in rows} == {"negative", "neutral", "positive"}
    feed = _module("make_feed")
    out = feed.build_feed({"en": feed.read_pool(tmp_path, "en")}, seed=0)
    assert len(out) == 2000


def test_guard_file_loads_with_the_guard_loader():
    from lmkernel.trust.guardspec import load_guard_file

    guard = load_guard_file(FINANCE / "guard.yaml")
    assert (guard.offensive.labels, guard.offensive.threshold, guard.offensive.action) == (["0", "1"], 0.7, "flag")
