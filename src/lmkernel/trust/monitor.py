"""Sliding windows over scored records: label shares, confidence, ood and low-confidence rates, guard
hits, and input drift against the artifact's reference.

A window is a ring of time buckets, each holding running counts; the window's totals are kept by
adding a record to the newest bucket and subtracting a bucket's counts when it falls out. An
observation therefore costs a few dictionary and list updates whatever the window's span, and
reading a window never re-scans its records (the server observes every classified text).
A record lacking a field (no ``ood`` when the run has no trust profile) leaves the statistics that
need it untouched; their rates read ``None``, never zero.
"""

from __future__ import annotations

import bisect
import math
import threading
import time as _time
from collections import deque
from typing import Any

from ..evaluation.slices import SCRIPTS, script_of
from .drift import DRIFT_FEATURES, compare, default_reference

CONF_BINS = 100  # confidence quantiles to a hundredth
PII_TYPES = frozenset({"email", "phone", "cn_id", "bank_card", "iban", "ip", "person"})
BUCKETS_PER_WINDOW = 60  # a window's edge is blurred by one bucket: 1/60 of its span
DEFAULT_WINDOWS = (60.0, 300.0, 3600.0)


class Stats:
    """Running counts of a set of records; ``add``/``remove`` keep totals without re-scanning."""

    __slots__ = ("n", "labels", "conf_n", "conf_sum", "conf_bins", "conf_ref", "ood_n", "ood_hits", "low_n",
                 "low_hits", "guards", "len_ref", "scripts")

    def __init__(self, conf_edges: int, len_edges: int) -> None:
        self.n = 0
        self.labels: dict[str, int] = {}
        self.conf_n = 0
        self.conf_sum = 0.0
        self.conf_bins = [0] * CONF_BINS
        self.conf_ref = [0] * conf_edges
        self.ood_n = self.ood_hits = self.low_n = self.low_hits = 0
        self.guards: dict[str, int] = {}
        self.len_ref = [0] * len_edges
        self.scripts: dict[str, int] = {}

    def merge(self, other: Stats, sign: int) -> None:
        """Add (sign 1) or take away (sign -1) another set's counts."""
        self.n += sign * other.n
        _merge_counts(self.labels, other.labels, sign)
        self.conf_n += sign * other.conf_n
        self.conf_sum += sign * other.conf_sum
        for field in ("conf_bins", "conf_ref", "len_ref"):
            mine, theirs = getattr(self, field), getattr(other, field)
            for i, v in enumerate(theirs):
                if v:
                    mine[i] += sign * v
        self.ood_n += sign * other.ood_n
        self.ood_hits += sign * other.ood_hits
        self.low_n += sign * other.low_n
        self.low_hits += sign * other.low_hits
        _merge_counts(self.guards, other.guards, sign)
        _merge_counts(self.scripts, other.scripts, sign)

    def add(self, item: tuple) -> None:
        """Count one record in its compact form (``Monitor._compact``): a handful of O(1) updates."""
        label, conf, conf_bin, conf_ref, ood, low, guards, len_ref, script = item
        self.n += 1
        if label is not None:
            self.labels[label] = self.labels.get(label, 0) + 1
        if conf is not None:
            self.conf_n += 1
            self.conf_sum += conf
            self.conf_bins[conf_bin] += 1
            self.conf_ref[conf_ref] += 1
        if ood is not None:
            self.ood_n += 1
            self.ood_hits += ood
        if low is not None:
            self.low_n += 1
            self.low_hits += low
        for kind in guards:
            self.guards[kind] = self.guards.get(kind, 0) + 1
        if len_ref is not None:
            self.len_ref[len_ref] += 1
        if script is not None:
            self.scripts[script] = self.scripts.get(script, 0) + 1


def _merge_counts(mine: dict[str, int], theirs: dict[str, int], sign: int) -> None:
    for key, v in theirs.items():
        left = mine.get(key, 0) + sign * v
        if left:
            mine[key] = left
        else:
            mine.pop(key, None)


class Window:
    """The records of the last ``span`` seconds, in ``BUCKETS_PER_WINDOW`` buckets."""

    def __init__(self, span: float, conf_edges: int, len_edges: int) -> None:
        self.span = float(span)
        self.width = self.span / BUCKETS_PER_WINDOW
        self._sizes = (conf_edges, len_edges)
        self.total = Stats(*self._sizes)
        self._buckets: deque[tuple[int, Stats]] = deque()

    def bucket(self, t: float) -> Stats:
        """The bucket a record at time ``t`` goes to (records out of order join the newest one)."""
        key = math.floor(t / self.width)
        if self._buckets and key <= self._buckets[-1][0]:
            return self._buckets[-1][1]
        stats = Stats(*self._sizes)
        self._buckets.append((key, stats))
        self.expire(t)
        return stats

    def expire(self, now: float) -> None:
        oldest = math.floor(now / self.width) - BUCKETS_PER_WINDOW
        while self._buckets and self._buckets[0][0] <= oldest:
            self.total.merge(self._buckets.popleft()[1], -1)


class Monitor:
    """Windows of scored records (TRUST_API.md's record shape) compared with a reference.

    ``reference``: trust.json's ``reference`` dict (None: the drift statistics are skipped, except a
    default length and script binning so the shares still show). ``windows``: spans in seconds.
    Thread-safe: the server observes from request handlers and reads from a background tick.
    """

    def __init__(self, reference: dict[str, Any] | None = None, windows: tuple[float, ...] = DEFAULT_WINDOWS) -> None:
        self.reference = reference
        ref = reference or default_reference()
        self.conf_edges = [float(e) for e in ref["confidence"]["edges"]]
        self.len_edges = [float(e) for e in ref["length"]["edges"]]
        self._sizes = (len(self.conf_edges) - 1, len(self.len_edges) - 1)
        self.windows: dict[float, Window] = {}
        self.observed = 0
        self.last_time: float | None = None
        self._lock = threading.Lock()
        for span in windows:
            self.add_window(span)

    def add_window(self, span: float) -> Window:
        """The window of ``span`` seconds (made on first use, e.g. for an alert rule's ``over``)."""
        with self._lock:
            if span not in self.windows:
                self.windows[span] = Window(span, *self._sizes)
            return self.windows[span]

    def observe(self, record: dict[str, Any]) -> None:
        """Count one scored record in every window; fields that are missing or None are skipped."""
        t = record.get("time")
        t = _time.time() if t is None else float(t)
        item = self._compact(record)
        with self._lock:
            self.observed += 1
            self.last_time = t if self.last_time is None else max(self.last_time, t)
            for window in self.windows.values():
                window.bucket(t).add(item)
                window.total.add(item)

    def _compact(self, record: dict[str, Any]) -> tuple:
        """The record as the tuple ``Stats.add`` counts: binned once, whatever the number of windows."""
        label = record.get("label")
        conf = record.get("confidence")
        conf_bin = conf_ref = None
        if conf is not None and math.isfinite(conf):
            conf = min(max(float(conf), 0.0), 1.0)
            conf_bin, conf_ref = min(int(conf * CONF_BINS), CONF_BINS - 1), _bin(self.conf_edges, conf)
        else:
            conf = None
        ood, low = record.get("ood"), record.get("low_confidence")
        text = record.get("text")
        length = record.get("length")
        if length is None and isinstance(text, str):
            length = len(text)
        script = record.get("script")
        if script is None and isinstance(text, str):
            script = script_of(text)
        return (None if label is None else str(label), conf, conf_bin, conf_ref,
                None if ood is None else int(bool(ood)), None if low is None else int(bool(low)),
                tuple(record.get("guards") or ()), None if length is None else _bin(self.len_edges, float(length)),
                None if script is None else (script if script in SCRIPTS else "other"))

    def expire(self, now: float | None = None) -> None:
        """Drop buckets older than each window at ``now`` (default: the wall clock), e.g. from a tick
        when no traffic arrives."""
        now = _time.time() if now is None else now
        with self._lock:
            for window in self.windows.values():
                window.expire(now)

    def stats(self, span: float) -> Stats:
        """A copy of the totals of the ``span``-second window."""
        window = self.add_window(span)
        with self._lock:
            copy = Stats(*self._sizes)
            copy.merge(window.total, 1)
            return copy

    def drift(self, span: float) -> dict[str, dict[str, float] | None]:
        """Per feature, PSI and Jensen-Shannon distance of the window against the reference (None without
        a reference or a count to compare)."""
        s = self.stats(span)
        return {feature: compare(self.reference, feature, s) for feature in DRIFT_FEATURES}

    def snapshot(self) -> dict[str, Any]:
        """Every window's statistics and drift, as JSON (GET /v1/monitor, ``lmkernel monitor`` summary)."""
        return {"observed": self.observed, "last_time": self.last_time, "reference": self.reference is not None,
                "windows": {_span_name(span): summary(self.stats(span)) | {"drift": self.drift(span)}
                            for span in sorted(self.windows)}}


def _bin(edges: list[float], value: float) -> int:
    """Index of the histogram bin holding ``value``; values outside the edges go to the end bins."""
    return min(max(bisect.bisect_right(edges, value) - 1, 0), len(edges) - 2)


def quantile(s: Stats, q: float) -> float | None:
    """The ``q`` quantile of confidence from the window's hundredth bins (bin centre)."""
    if not s.conf_n:
        return None
    target, seen = q * s.conf_n, 0
    for i, count in enumerate(s.conf_bins):
        seen += count
        if seen >= target and count:
            return (i + 0.5) / CONF_BINS
    return 1.0


def summary(s: Stats) -> dict[str, Any]:
    """The window's statistics as JSON."""
    return {
        "count": s.n,
        "label_shares": {k: v / s.n for k, v in sorted(s.labels.items())} if s.n else {},
        "confidence": {"mean": s.conf_sum / s.conf_n if s.conf_n else None,
                       "p10": quantile(s, 0.1), "p50": quantile(s, 0.5), "p90": quantile(s, 0.9)},
        "ood_rate": s.ood_hits / s.ood_n if s.ood_n else None,
        "low_confidence_rate": s.low_hits / s.low_n if s.low_n else None,
        "guards": dict(sorted(s.guards.items())),
        "script_shares": {k: v / sum(s.scripts.values()) for k, v in sorted(s.scripts.items())} if s.scripts else {},
    }


def _span_name(span: float) -> str:
    for unit, size in (("h", 3600), ("m", 60)):
        if span >= size and span % size == 0:
            return f"{int(span // size)}{unit}"
    return f"{span:g}s"
