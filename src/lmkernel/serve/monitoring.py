"""The server's monitor: every classified text is counted (metrics, windows, audit log) and the alert
rules judged, in a thread of its own. The request path only puts the texts and their rows on a
bounded queue: the event loop, which parses and answers every request, never spends the counting,
the hashing or the audit write (nor waits for the GIL in the middle of them). The same thread
ticks every few seconds, expiring windows and judging the rules when traffic stops, so an alert
also resolves in a quiet period. Past ``QUEUE_REQUESTS`` waiting requests, new ones are dropped
from monitoring (counted in /v1/monitor), never delayed.

The rules file and the webhook URL are checked when the app is built (a bad file stops the server
before it binds); the windows start when the model is ready, with the reference from the artifact's
trust.json (without one, drift reads null and the other statistics still work).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from pathlib import Path
from typing import Any

from ..errors import LmkError
from ..trust.alerts import AlertEvent, load_rules
from ..trust.watch import Watch, record_for
from .metrics import Metrics
from .settings import ServeSettings

log = logging.getLogger("lmkernel.serve")
TICK_S = 5.0
QUEUE_REQUESTS = 10_000
_STOP = object()


def load_reference(model_dir: str | Path | None) -> dict[str, Any] | None:
    """The trust profile's drift ``reference`` (written at training time) of a model or run folder, or None;
    a damaged profile is logged and monitoring goes on without drift."""
    if model_dir is None:
        return None
    from ..trust.profile import load_profile

    folders = [d for d in (Path(model_dir), Path(model_dir) / "model") if (d / "trust.json").is_file()]
    try:
        profile = load_profile(folders[0]) if folders else None
    except LmkError as e:
        log.warning("monitor: %s; drift stays off", e)
        return None
    return profile.data["reference"] if profile is not None else None


def monitor_for(task: str, settings: ServeSettings, metrics: Metrics, own_router: bool = False) -> ServeMonitor | None:
    """The monitor of a classification server (None for other tasks and applications' own routers).

    Raises:
        LmkError: --alerts, --webhook or --audit-log given to a server that has no monitor, or a bad rules file.
    """
    if task == "classification" and not own_router:
        return ServeMonitor(settings, metrics)
    given = [f for f, v in (("--alerts", settings.alerts), ("--webhook", settings.webhook),
                            ("--audit-log", settings.audit_log)) if v]
    if given:
        from ..errors import LmkError

        raise LmkError(f"{', '.join(given)}: monitoring covers classification servers, not {task}",
                       where=given[0], fix="leave the flag out, or serve a classification run")
    return None


class ServeMonitor:
    """One per app: the ``Watch`` (made once the model is ready), its metrics and its tick thread."""

    def __init__(self, settings: ServeSettings, metrics: Metrics) -> None:
        self.settings, self.metrics = settings, metrics
        self.rules = load_rules(settings.alerts) if settings.alerts else []
        self.watch: Watch | None = None
        self._lock = threading.Lock()
        self._queue: queue.Queue = queue.Queue(maxsize=QUEUE_REQUESTS)
        self._thread: threading.Thread | None = None
        self.dropped = 0

    def start(self, model_dir: str | Path | None) -> Watch:
        """Build the watch (and its webhook sender, audit log and tick thread) once."""
        with self._lock:
            if self.watch is None:
                from ..trust.audit import AuditLog
                from ..trust.guard import redact_pii
                from ..trust.webhook import Webhook

                s = self.settings
                self.watch = Watch(load_reference(model_dir), self.rules, on_event=self._on_event,
                                   webhook=Webhook(s.webhook) if s.webhook else None,
                                   audit=AuditLog(s.audit_log, redact=redact_pii, fsync=s.audit_fsync)
                                   if s.audit_log else None)
                self._thread = threading.Thread(target=self._work, name="lmkernel-monitor", daemon=True)
                self._thread.start()
            return self.watch

    def observe(self, predictor: Any, texts: list[str], results: list[Any],
                guards: list[list[str]] | None = None) -> None:
        """Queue a request's texts and result rows (dicts or pydantic models) for the monitor thread."""
        if self.watch is None:
            self.start(getattr(predictor, "model_dir", None))
        try:
            self._queue.put_nowait((time.time(), texts, results, guards))
        except queue.Full:
            self.dropped += 1

    def _count(self, at: float, texts: list[str], results: list[Any], guards: list[list[str]] | None) -> None:
        assert self.watch is not None
        m = self.metrics
        for i, (text, row) in enumerate(zip(texts, results)):
            row = row if isinstance(row, dict) else row.model_dump()
            record = record_for(text, row, guards[i] if guards else (), at=at)
            m.predictions.labels(str(record["label"])).inc()
            if record["confidence"] is not None:
                m.confidence.observe(record["confidence"])
            for flag, counter in (("ood", m.ood), ("low_confidence", m.low_confidence)):
                if record[flag] is not None:
                    m.flagged.labels(flag).inc()
                    if record[flag]:
                        counter.inc()
            self.watch.observe(record)

    def _on_event(self, event: AlertEvent) -> None:
        self.metrics.alerts_firing.labels(event.rule.name).set(1 if event.status == "firing" else 0)

    def _work(self) -> None:
        next_tick = time.monotonic() + TICK_S
        while True:
            try:
                item = self._queue.get(timeout=max(0.0, next_tick - time.monotonic()))
            except queue.Empty:
                item = None
            if item is _STOP:
                self._queue.task_done()
                return
            try:
                if item is not None:
                    self._count(*item)
                if time.monotonic() >= next_tick:
                    next_tick = time.monotonic() + TICK_S
                    self.tick()
            except Exception:  # the monitor must never take the server down
                log.exception("monitor failed on a request")
            finally:
                if item is not None:
                    self._queue.task_done()

    def flush(self, timeout: float = 2.0) -> bool:
        """Wait until the queued requests are counted (True) or ``timeout`` passed."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.001)
        return not self._queue.unfinished_tasks

    def tick(self, now: float | None = None) -> None:
        if self.watch is None:
            return
        self.watch.tick(now)
        for span in list(self.watch.monitor.windows):
            name = _span(span)
            for feature, found in self.watch.monitor.drift(span).items():
                if found is not None:
                    for measure in ("psi", "js"):
                        self.metrics.drift.labels(feature, measure, name).set(found[measure])

    def snapshot(self) -> dict[str, Any]:
        if self.watch is None:
            return {"status": "loading", "rules": [r.describe() for r in self.rules]}
        self.flush()
        return {"status": "ready", "dropped": self.dropped, **self.watch.snapshot()}

    def close(self, timeout: float = 5.0) -> None:
        """Count what is queued, stop the thread, deliver queued alerts and close the audit log."""
        if self._thread is not None:
            self.flush(timeout)
            try:
                self._queue.put(_STOP, timeout=1.0)
            except queue.Full:
                pass
            self._thread.join(timeout=1.0)
        if self.watch is not None:
            self.watch.close(timeout)


def _span(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600}h" if s % 3600 == 0 else f"{s // 60}m" if s % 60 == 0 else f"{s}s"
