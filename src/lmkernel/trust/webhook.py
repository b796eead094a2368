"""Alert delivery to a webhook: a JSON POST per event from a background thread, retried with back-off.

Requests never wait on the webhook: ``send`` puts the event on a bounded queue and returns; when the
queue is full the event is dropped and counted (an alert storm must not grow memory or stall the
server). The sender retries a failed POST (connection error, timeout, 5xx, 429) with exponential
back-off and full jitter, then gives up on that event, logs it and counts it; 4xx other than 429
is not retried (the receiver refused the payload). urllib, not a client library: one POST needs
nothing more, and nothing here may be imported by requests that do not alert.
"""

from __future__ import annotations

import json
import logging
import queue
import random
import threading
import time
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlsplit

from ..errors import LmkError

log = logging.getLogger("lmkernel.alerts")


def check_url(url: str) -> str:
    """Raises LmkError unless ``url`` is an http(s) URL with a host."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise LmkError(f"--webhook {url!r} is not an http(s) URL", where="--webhook",
                       fix="pass e.g. http://127.0.0.1:9000/alerts")
    return url


class Webhook:
    """A background sender of JSON payloads to one URL (Alertmanager-like: one alert per POST body
    ``{"receiver", "status", "alerts": [...]}``)."""

    def __init__(self, url: str, *, max_queue: int = 1000, attempts: int = 5, backoff_s: float = 0.5,
                 max_backoff_s: float = 30.0, timeout_s: float = 5.0, seed: int | None = None) -> None:
        self.url = check_url(url)
        self.attempts, self.backoff_s, self.max_backoff_s = attempts, backoff_s, max_backoff_s
        self.timeout_s = timeout_s
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue(maxsize=max_queue)
        self._rng = random.Random(seed)
        self.sent = self.failed = self.dropped = self.retries = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lmkernel-webhook", daemon=True)
        self._thread.start()

    def send(self, alert: dict[str, Any]) -> bool:
        """Queue one alert (``AlertEvent.to_json()``); False when the queue was full and it was dropped."""
        body = {"receiver": "lmkernel", "status": alert.get("status"), "alerts": [alert]}
        try:
            self._queue.put_nowait(body)
            return True
        except queue.Full:
            self.dropped += 1
            log.warning("webhook queue full: dropped the %s alert %s", alert.get("status"),
                        alert.get("labels", {}).get("alertname"))
            return False

    def _run(self) -> None:
        while True:
            body = self._queue.get()
            try:
                if body is None:
                    return
                self._deliver(body)
            finally:
                self._queue.task_done()

    def _deliver(self, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        for attempt in range(self.attempts):
            error = self._post(data)
            if error is None:
                self.sent += 1
                return
            if error == "rejected" or attempt == self.attempts - 1 or self._stop.is_set():
                break
            self.retries += 1
            delay = self._rng.uniform(0, min(self.max_backoff_s, self.backoff_s * 2 ** attempt))
            self._stop.wait(delay)
        self.failed += 1
        log.error("webhook %s: gave up on an alert after %d attempt(s): %s", self.url, attempt + 1, error)

    def _post(self, data: bytes) -> str | None:
        """None on success; an error text (``rejected`` for a 4xx that retrying cannot fix)."""
        req = urllib.request.Request(self.url, data=data, method="POST",
                                     headers={"Content-Type": "application/json", "User-Agent": "lmkernel"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:  # noqa: S310 (http(s) checked)
                resp.read()
            return None
        except urllib.error.HTTPError as e:
            if 400 <= e.code < 500 and e.code != 429:
                log.error("webhook %s refused the alert: HTTP %d", self.url, e.code)
                return "rejected"
            return f"HTTP {e.code}"
        except (urllib.error.URLError, OSError, TimeoutError) as e:
            return f"{type(e).__name__}: {e}"

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until the queue is empty (True) or ``timeout`` passed (False)."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.01)
        return not self._queue.unfinished_tasks

    def close(self, timeout: float = 5.0) -> None:
        """Deliver what is queued within ``timeout``, then stop the thread (retry waits are cut short)."""
        self.flush(timeout)
        self._stop.set()
        try:
            self._queue.put_nowait(None)
        except queue.Full:
            pass
        self._thread.join(timeout=1.0)

    def stats(self) -> dict[str, int]:
        return {"sent": self.sent, "failed": self.failed, "dropped": self.dropped, "retries": self.retries,
                "queued": self._queue.qsize()}
