"""Alert rules: the file's validation, one alert per burst that resolves, cooldown, Prometheus export."""

from __future__ import annotations

import pytest
import yaml

from lmkernel.errors import LmkError
from lmkernel.trust.alerts import RuleEngine, load_rules
from lmkernel.trust.monitor import Monitor
from lmkernel.trust.prometheus import expr, write_rules
from lmkernel.trust.watch import Watch

RULES = """rules:
  - name: negative_burst
    metric: share
    label: negative
    op: ">"
    value: 0.3
    over: 1m
    min_count: 50
    for: 10s
    cooldown: 5m
  - name: ood_high
    metric: ood_rate
    value: 0.1
  - name: length_drift
    metric: drift
    feature: length
    value: 0.2
  - name: pii_hits
    metric: guard_count
    guard: pii
    value: 10
  - name: unsure
    metric: mean_confidence
    op: "<"
    value: 0.6
"""


def _rules(tmp_path, text=RULES):
    path = tmp_path / "alerts.yaml"
    path.write_text(text, encoding="utf-8")
    return load_rules(path)


def _feed(watch: Watch, start: float, seconds: int, neg_share: float, per_s: int = 5) -> list:
    events = []
    for i in range(seconds * per_s):
        neg = (i % 100) < neg_share * 100
        events += watch.observe({"time": start + i / per_s, "label": "negative" if neg else "positive",
                                 "confidence": 0.9})
    return events


def test_rules_file_loads(tmp_path):
    rules = _rules(tmp_path)
    assert [r.name for r in rules] == ["negative_burst", "ood_high", "length_drift", "pii_hits", "unsure"]
    assert rules[0].window_s == 60 and rules[2].needed == 200 and rules[1].needed == 50


@pytest.mark.parametrize(("text", "needle"), [
    ("rules:\n  - name: x\n    metric: share\n    value: 0.3\n", "needs `label`"),
    ("rules:\n  - name: x\n    metric: shares\n    value: 0.3\n", "rules.0.metric"),
    ("rules:\n  - name: x\n    metric: count\n    value: 1\n    over: soon\n", "not a duration"),
    ("rules:\n  - name: x\n    metric: count\n    value: 1\n    colour: red\n", "rules.0.colour"),
    ("rules:\n  - {name: a, metric: count, value: 1}\n  - {name: a, metric: count, value: 2}\n", "unique"),
    ("rules: [\n", "not valid YAML"),
])
def test_bad_rules_file_is_an_lmk_error(tmp_path, text, needle):
    with pytest.raises(LmkError, match=needle.replace("`", ".").replace("(", ".")):
        _rules(tmp_path, text)


def test_missing_rules_file(tmp_path):
    with pytest.raises(LmkError, match="cannot read the alert rules"):
        load_rules(tmp_path / "nope.yaml")


def test_one_alert_per_burst_then_resolved(tmp_path):
    events_seen = []
    watch = Watch(None, _rules(tmp_path)[:1], on_event=events_seen.append, windows=())
    calm = _feed(watch, 0, 120, 0.1)
    assert calm == []
    burst = _feed(watch, 120, 120, 0.6)  # two minutes of 60 % negative
    assert [e.status for e in burst] == ["firing"]
    fired = burst[0]
    assert fired.value > 0.3 and fired.count >= 50
    assert fired.at - 120 >= 10  # `for: 10s` held before firing
    after = _feed(watch, 240, 120, 0.1)
    assert [e.status for e in after] == ["resolved"]
    payload = after[0].to_json()
    assert payload["labels"]["alertname"] == "negative_burst" and payload["status"] == "resolved"
    assert payload["startsAt"].endswith("Z") and payload["endsAt"]
    assert len(events_seen) == 2


def test_cooldown_holds_back_a_second_burst(tmp_path):
    watch = Watch(None, _rules(tmp_path)[:1], windows=())
    statuses = [e.status for e in _feed(watch, 0, 120, 0.6) + _feed(watch, 120, 80, 0.1) + _feed(watch, 200, 60, 0.6)]
    assert statuses == ["firing", "resolved"]  # the second burst falls inside the 5 m cooldown
    later = _feed(watch, 700, 120, 0.6)
    assert [e.status for e in later] == ["firing"]


def test_min_count_keeps_small_windows_quiet(tmp_path):
    watch = Watch(None, _rules(tmp_path)[:1], windows=())
    events = [e for i in range(20) for e in watch.observe({"time": i * 2.0, "label": "negative"})]
    assert events == [] and watch.engine.states["negative_burst"].value is None


def test_tick_resolves_when_traffic_stops(tmp_path):
    watch = Watch(None, _rules(tmp_path)[:1], windows=())
    assert [e.status for e in _feed(watch, 0, 90, 0.6)] == ["firing"]
    assert [e.status for e in watch.tick(1000.0)] == ["resolved"]


def test_guard_and_ood_rules(tmp_path):
    rules = _rules(tmp_path)
    m = Monitor(None)
    engine = RuleEngine([rules[1], rules[3]], m)
    for i in range(60):
        m.observe({"time": float(i), "label": "x", "ood": i % 5 == 0, "guards": ["email", "phone"] if i < 6 else []})
    events = engine.evaluate(60.0)
    assert sorted(e.rule.name for e in events) == ["ood_high", "pii_hits"]


def test_prometheus_rules_file(tmp_path):
    rules = _rules(tmp_path)
    out = write_rules(rules, tmp_path / "prom.yaml")
    doc = yaml.safe_load(out.read_text(encoding="utf-8"))
    entries = {r["alert"]: r for r in doc["groups"][0]["rules"]}
    assert doc["groups"][0]["name"] == "lmkernel"
    assert entries["negative_burst"]["expr"] == (
        'sum(increase(lmk_predictions_total{label="negative"}[1m])) / sum(increase(lmk_predictions_total[1m])) '
        "> 0.3 and sum(increase(lmk_predictions_total[1m])) >= 50")
    assert entries["negative_burst"]["for"] == "10s"
    assert entries["length_drift"]["expr"] == 'lmk_drift{feature="length",measure="psi",window="5m"} > 0.2'
    assert 'lmk_guard_findings_total{type=~"bank_card|cn_id|email|iban|ip|person|phone"}' in entries["pii_hits"]["expr"]
    assert expr(rules[4]).startswith("sum(increase(lmk_confidence_sum[5m])) / "
                                     "sum(increase(lmk_confidence_count[5m])) < 0.6")


def test_example_rules_file_loads():
    from pathlib import Path

    rules = load_rules(Path(__file__).resolve().parents[2] / "examples" / "monitoring" / "alerts.yaml")
    assert {r.metric for r in rules} >= {"share", "ood_rate", "drift", "guard_count", "mean_confidence"}


@pytest.mark.parametrize(("when", "fields"), [
    ("share(label=negative) > 0.3", {"metric": "share", "label": "negative", "op": ">", "value": 0.3}),
    ("ood_rate >= 0.1", {"metric": "ood_rate", "op": ">=", "value": 0.1}),
    ("mean(confidence) < 0.6", {"metric": "mean_confidence", "op": "<", "value": 0.6}),
    ("quantile(confidence, 0.1) < 0.5", {"metric": "confidence_quantile", "q": 0.1, "value": 0.5}),
    ("drift(length) > 0.2", {"metric": "drift", "feature": "length", "measure": "psi"}),
    ("drift(script, js) > 0.3", {"metric": "drift", "feature": "script", "measure": "js"}),
    ("guard(pii) count > 10", {"metric": "guard_count", "guard": "pii", "value": 10.0}),
    ("guard(email) rate > 0.05", {"metric": "guard_rate", "guard": "email"}),
])
def test_when_shorthand(tmp_path, when, fields):
    rule = _rules(tmp_path, f"- name: r\n  when: {when}\n  over: 5m\n")[0]
    assert {k: getattr(rule, k) for k in fields} == fields


@pytest.mark.parametrize(("text", "needle"), [
    ("- {name: r, when: 'share(label=negative) >> 0.3'}\n", "not a condition"),
    ("- {name: r, when: 'median(confidence) < 0.3'}\n", "unknown condition median"),
    ("- {name: r, when: 'ood_rate > 0.1', value: 0.2}\n", "already sets value"),
    ("- {name: r, when: 'drift(colour) > 0.1'}\n", "rules.0.feature"),
])
def test_bad_when(tmp_path, text, needle):
    with pytest.raises(LmkError, match=needle):
        _rules(tmp_path, text)
