"""The server's monitor: /v1/classify feeds it, GET /v1/monitor shows windows, drift and alerts, the
alert reaches the webhook, the audit log verifies, /metrics carries the lmk_* series."""

from __future__ import annotations

import json
import time
from typing import Any, ClassVar

import pytest
from fastapi.testclient import TestClient
from trust_helpers import profile_json, receiver

from lmkernel.errors import LmkError
from lmkernel.serve.app import create_app
from lmkernel.serve.settings import ServeSettings
from lmkernel.trust.audit_verify import verify
from lmkernel.trust.drift import build_reference

LABELS = ["negative", "positive"]


class Fake:
    """Words as tokens; an odd number of words is positive."""

    task: ClassVar[str] = "classification"
    name = "fake"
    max_input_tokens = 16

    def __init__(self, model_dir):
        self.model_dir = model_dir

    def info(self) -> dict[str, Any]:
        return {"id": self.name, "task": self.task, "labels": LABELS, "max_input_tokens": 16}

    def encode(self, texts, truncate):
        return [[len(w) for w in t.split()] for t in texts]

    def __call__(self, items):
        return [{"label": LABELS[len(x) % 2], "score": 0.8, "probabilities": {"negative": 0.2, "positive": 0.8}}
                for x in items]

    def setup_thread(self) -> None:
        pass

    def warm_up(self) -> None:
        pass


@pytest.fixture()
def hook():
    with receiver() as (url, calls):
        yield url, calls


def _model_dir(tmp_path):
    d = tmp_path / "model"
    d.mkdir()
    texts = ["one two three", "one two"] * 50
    ref = build_reference(["positive", "negative"] * 50, [0.8] * 100, texts)
    (d / "trust.json").write_text(profile_json(ref), encoding="utf-8")
    return d


def test_monitor_endpoint_alert_webhook_audit(tmp_path, hook):
    hook_url, got = hook
    rules = tmp_path / "alerts.yaml"
    rules.write_text("- {name: positive_burst, metric: share, label: positive, value: 0.5, over: 1m, min_count: 1}\n")
    audit = tmp_path / "audit.jsonl"
    app = create_app(ServeSettings(max_wait_ms=1, alerts=str(rules), webhook=hook_url, audit_log=str(audit)),
                     task="classification", load=lambda: Fake(_model_dir(tmp_path)))
    with TestClient(app) as client:
        while client.get("/readyz").status_code != 200:
            time.sleep(0.01)
        r = client.post("/v1/classify", json={"texts": ["a b c", "mail x@y.org", "a b c d e"]})
        assert r.status_code == 200
        body = client.get("/v1/monitor").json()
        window = body["windows"]["1m"]
        assert body["status"] == "ready" and body["reference"] is True
        assert window["count"] == 3 and window["label_shares"]["positive"] == pytest.approx(2 / 3)
        assert window["drift"]["label"] is None  # 3 records: too few to compare
        assert body["alerts"][0]["state"] == "firing"
        assert body["recent_alerts"][0]["labels"]["alertname"] == "positive_burst"
        metrics = client.get("/metrics").text
        assert 'lmk_predictions_total{label="positive"} 2.0' in metrics
        assert 'lmk_alert_firing{alertname="positive_burst"} 1.0' in metrics
        app.state.service.monitor.watch.webhook.flush(5)
    assert got and got[0]["alerts"][0]["status"] == "firing"
    lines = [json.loads(x) for x in audit.read_text().splitlines()]
    assert [x["event"] for x in lines] == ["classify", "alert", "classify", "classify"]  # fired on the first text
    assert "x@y.org" not in audit.read_text()
    assert verify([audit]).ok


def test_monitor_without_reference_or_rules(tmp_path):
    app = create_app(ServeSettings(max_wait_ms=1), task="classification", load=lambda: Fake(tmp_path))
    with TestClient(app) as client:
        while client.get("/readyz").status_code != 200:
            time.sleep(0.01)
        assert client.post("/v1/classify", json={"texts": ["a b"]}).status_code == 200
        body = client.get("/v1/monitor").json()
        assert body["reference"] is False and body["alerts"] == []
        assert body["windows"]["5m"]["label_shares"] == {"negative": 1.0}


def test_bad_rules_file_stops_the_app(tmp_path):
    rules = tmp_path / "alerts.yaml"
    rules.write_text("- {name: x, metric: share, value: 0.5}\n")
    with pytest.raises(LmkError, match="needs `label`"):
        create_app(ServeSettings(alerts=str(rules)), task="classification", load=lambda: Fake(tmp_path))


def test_bad_settings():
    with pytest.raises(LmkError, match="not an http"):
        ServeSettings(webhook="localhost:9000")
    with pytest.raises(LmkError, match="--audit-fsync"):
        ServeSettings(audit_fsync="sometimes")


def test_monitor_flags_need_a_classification_server():
    with pytest.raises(LmkError, match="monitoring covers classification servers"):
        create_app(ServeSettings(audit_log="/tmp/x.jsonl"), task="ner", load=lambda: None)


def test_load_reference(tmp_path):
    from lmkernel.serve.monitoring import load_reference

    assert load_reference(None) is None and load_reference(tmp_path) is None
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "trust.json").write_text(profile_json({"n": 3}))
    assert load_reference(tmp_path) == {"n": 3}  # a run folder: its model/ is read
    (tmp_path / "model" / "trust.json").write_text("{broken")
    assert load_reference(tmp_path / "model") is None  # logged, not raised
