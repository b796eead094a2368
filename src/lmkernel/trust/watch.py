"""The monitor, its alert rules and their sinks (log, webhook, audit log, a callback) as one object.

The server and ``lmkernel monitor`` both feed a ``Watch``: each scored record is counted, written
to the audit log when there is one, and the rules are judged at most once per ``eval_every_s`` of
record time (a replay with its own timestamps alerts at the same records every time; the server
also calls ``tick`` from a background thread so a rule resolves when traffic stops).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Any

from .alerts import AlertEvent, Rule, RuleEngine
from .monitor import DEFAULT_WINDOWS, Monitor, script_of

log = logging.getLogger("lmkernel.alerts")


def record_for(text: str, row: dict[str, Any], guards: list[str] | tuple[str, ...] = (),
               at: float | None = None) -> dict[str, Any]:
    """The monitor's record (TRUST_API.md) for one classified text and its prediction row."""
    score = row.get("score")
    return {"time": time.time() if at is None else at, "label": row.get("label"),
            "confidence": float(score) if isinstance(score, (int, float)) and math.isfinite(score) else None,
            "ood": row.get("ood"), "low_confidence": row.get("low_confidence"), "guards": list(guards),
            "length": len(text), "script": script_of(text), "text": text}


class Watch:
    """Counts records, judges rules, and sends each firing/resolution to the sinks."""

    def __init__(self, reference: dict[str, Any] | None = None, rules: list[Rule] | None = None, *,
                 webhook: Any = None, audit: Any = None, on_event: Callable[[AlertEvent], None] | None = None,
                 eval_every_s: float = 1.0, windows: tuple[float, ...] = DEFAULT_WINDOWS) -> None:
        self.monitor = Monitor(reference, windows)
        self.engine = RuleEngine(rules or [], self.monitor)
        self.webhook, self.audit, self.on_event = webhook, audit, on_event
        self.eval_every_s = eval_every_s
        self.events: list[dict[str, Any]] = []  # the last alerts, newest last (GET /v1/monitor)
        self._last_eval: float | None = None
        self._eval_lock = threading.Lock()

    def observe(self, record: dict[str, Any], audit_fields: dict[str, Any] | None = None) -> list[AlertEvent]:
        """Count one record (and audit it); returns the alerts this observation triggered, if it was
        time to judge the rules."""
        if record.get("time") is None:
            record = {**record, "time": time.time()}
        self.monitor.observe(record)
        if self.audit is not None:
            fields = audit_fields if audit_fields is not None else \
                {k: record.get(k) for k in ("text", "label", "confidence", "ood", "low_confidence", "guards")}
            self.audit.append("classify", fields, at=record["time"])
        now = float(record["time"])
        if self.engine.rules and (self._last_eval is None or now - self._last_eval >= self.eval_every_s):
            return self.evaluate(now)
        return []

    def evaluate(self, now: float) -> list[AlertEvent]:
        """Judge every rule at ``now`` and deliver the transitions."""
        with self._eval_lock:
            self._last_eval = now
            events = self.engine.evaluate(now)
        for event in events:
            self._deliver(event)
        return events

    def tick(self, now: float | None = None) -> list[AlertEvent]:
        """Expire old buckets and judge the rules at ``now`` (default: the wall clock)."""
        now = time.time() if now is None else now
        self.monitor.expire(now)
        return self.evaluate(now)

    def _deliver(self, event: AlertEvent) -> None:
        payload = event.to_json()
        level = logging.WARNING if event.status == "firing" else logging.INFO
        log.log(level, "alert %s %s: %s (value %s, %d records)", event.rule.name, event.status,
                event.rule.describe(), "n/a" if event.value is None else f"{event.value:.4g}", event.count)
        self.events = (self.events + [payload])[-50:]
        if self.webhook is not None:
            self.webhook.send(payload)
        if self.audit is not None:
            self.audit.append("alert", {"alert": event.rule.name, "status": event.status, "value": event.value},
                              at=event.at)
        if self.on_event is not None:
            self.on_event(event)

    def snapshot(self) -> dict[str, Any]:
        out = self.monitor.snapshot()
        out["alerts"] = self.engine.snapshot()
        out["recent_alerts"] = list(self.events)
        if self.webhook is not None:
            out["webhook"] = self.webhook.stats()
        if self.audit is not None:
            out["audit"] = {"path": str(self.audit.path), "lines": self.audit.seq, "head": self.audit.head}
        return out

    def close(self, timeout: float = 5.0) -> None:
        if self.webhook is not None:
            self.webhook.close(timeout)
        if self.audit is not None:
            self.audit.close()
