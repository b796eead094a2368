"""Prometheus metrics of one app: requests, latency, batch sizes, queue depth, tokens.

Each app owns a ``CollectorRegistry`` instead of the process-global one, so several apps (tests,
or a future multi-model server) never collide on metric names. Requests are counted by route
*template* (``/v1/classify``), never the raw path, so scanners probing random URLs cannot blow up
the label space; unmatched paths count as ``unmatched``.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
RATE_WINDOW_S = 10.0
CONFIDENCE_BUCKETS = tuple(round(0.05 * i, 2) for i in range(1, 21))


class Metrics:
    """The server's metric families, registered in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("lmk_requests", "HTTP requests by route and status.", ["route", "status"], registry=r)
        self.latency = Histogram("lmk_request_seconds", "HTTP request latency by route.", ["route"],
                                 buckets=LATENCY_BUCKETS, registry=r)
        self.batch_size = Histogram("lmk_batch_size", "Texts per dynamic batch the worker ran.",
                                    buckets=BATCH_BUCKETS, registry=r)
        self.batch_seconds = Histogram("lmk_batch_seconds", "Model time per dynamic batch.",
                                       buckets=LATENCY_BUCKETS, registry=r)
        self.queue_depth = Gauge("lmk_queue_depth", "Texts waiting for the batcher.", registry=r)
        self.input_tokens = Counter("lmk_input_tokens", "Input tokens accepted for inference.", registry=r)
        self.generated_tokens = Counter("lmk_generated_tokens", "Completion tokens generated.", registry=r)
        self.decode_batch = Histogram("lmk_decode_batch_size", "Requests per continuous-batching decode step.",
                                      buckets=BATCH_BUCKETS, registry=r)
        self.first_token = Histogram("lmk_time_to_first_token_seconds", "Request arrival to first token.",
                                     buckets=LATENCY_BUCKETS, registry=r)
        self.guard_findings = Counter("lmk_guard_findings", "Guard findings by type, action and where "
                                      "(input, output).", ["type", "action", "where"], registry=r)
        self.running = Gauge("lmk_running_requests", "Generations in the running batch.", registry=r)
        self.tokens_per_second = Gauge("lmk_generated_tokens_per_second",
                                       f"Tokens generated per second over the last {RATE_WINDOW_S:g} s.", registry=r)
        # monitoring (serve/monitoring.py): what the exported Prometheus alert rules read (trust/prometheus.py)
        self.predictions = Counter("lmk_predictions", "Classified texts by predicted label.", ["label"], registry=r)
        self.flagged = Counter("lmk_flagged", "Classified texts that carried an ood / low_confidence flag at all "
                               "(the runs with a trust profile).", ["flag"], registry=r)
        self.ood = Counter("lmk_ood", "Classified texts flagged out-of-distribution.", registry=r)
        self.low_confidence = Counter("lmk_low_confidence", "Classified texts flagged low-confidence.", registry=r)
        self.confidence = Histogram("lmk_confidence", "Top probability of each classified text.",
                                    buckets=CONFIDENCE_BUCKETS, registry=r)
        self.drift = Gauge("lmk_drift", "Input drift of a monitor window against the model's reference.",
                           ["feature", "measure", "window"], registry=r)
        self.alerts_firing = Gauge("lmk_alert_firing", "1 while an alert rule fires.", ["alertname"], registry=r)
        self._steps: deque[tuple[float, int]] = deque()  # (time, tokens) of recent decode steps
        self._steps_lock = threading.Lock()
        self.tokens_per_second.set_function(self._token_rate)

    def track_queue(self, depth: Callable[[], float]) -> None:
        self.queue_depth.set_function(depth)

    def on_batch(self, size: int, seconds: float) -> None:
        self.batch_size.observe(size)
        self.batch_seconds.observe(seconds)

    def track_running(self, running: Callable[[], float]) -> None:
        self.running.set_function(running)

    def on_decode_step(self, size: int, seconds: float, tokens: int) -> None:
        """Called by the generation engine's thread after each decode step."""
        self.decode_batch.observe(size)
        now = time.monotonic()
        with self._steps_lock:
            self._steps.append((now, tokens))
            while self._steps and self._steps[0][0] < now - RATE_WINDOW_S:
                self._steps.popleft()

    def _token_rate(self) -> float:
        now = time.monotonic()
        with self._steps_lock:
            return sum(n for t, n in self._steps if t >= now - RATE_WINDOW_S) / RATE_WINDOW_S

    def render(self) -> bytes:
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Pure ASGI middleware (no BaseHTTPMiddleware: it costs a task per request) that times and counts."""

    def __init__(self, app: ASGIApp, metrics: Metrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500  # what the client sees if the app dies before answering

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            self.metrics.requests.labels(route, str(status)).inc()
            self.metrics.latency.labels(route).observe(time.perf_counter() - start)
