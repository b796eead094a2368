"""Alert rules over the monitor's windows: a YAML file of structured rules, and their state machine.

A rule names a metric, a comparison and a window (``over``); it is only judged once the window holds
``min_count`` records, so a quiet minute cannot fire it. Each rule moves
inactive -> pending (the condition holds) -> firing (it held for ``for``) -> resolved (it stopped
holding) -> inactive, and after resolving it may not fire again for ``cooldown``: one burst gives
one alert and one resolution, not one per request. ``prometheus.py`` writes the same rules as a
Prometheus alerting-rules file.

    rules:
      - name: negative_burst
        metric: share          # share | ood_rate | low_confidence_rate | mean_confidence |
        label: negative        # confidence_quantile | drift | guard_count | guard_rate | count
        op: ">"
        value: 0.3
        over: 5m
        min_count: 50
      - name: length_drift     # the same with `when:`, a one-line shorthand for metric/label/op/value
        when: drift(length) > 0.2
        over: 1m

``when:`` reads ``share(label=negative) > 0.3``, ``ood_rate > 0.1``, ``low_confidence_rate > 0.2``,
``mean(confidence) < 0.6``, ``quantile(confidence, 0.1) < 0.5``, ``drift(length) > 0.2`` (or
``drift(length, js)``), ``guard(pii) count > 10``, ``guard(email) rate > 0.05``, ``count < 10``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, model_validator

from ..errors import LmkError
from ..specmodel import SpecModel
from .drift import DRIFT_FEATURES
from .monitor import PII_TYPES, Monitor, Stats, quantile

METRICS = ("share", "ood_rate", "low_confidence_rate", "mean_confidence", "confidence_quantile", "drift",
           "guard_count", "guard_rate", "count")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
OPS = {">": float.__gt__, ">=": float.__ge__, "<": float.__lt__, "<=": float.__le__}


def seconds(text: str | float | int) -> float:
    """``"5m"`` -> 300.0; a bare number is seconds."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return float(text)
    m = _DURATION.match(str(text))
    if m is None:
        raise ValueError(f"{text!r} is not a duration; write e.g. 30s, 5m or 1h")
    return float(m.group(1)) * _UNIT_S[m.group(2) or "s"]


_WHEN = re.compile(r"^\s*(?P<fn>[a-z_]+)\s*(?:\((?P<args>[^)]*)\))?\s*(?P<kind>count|rate)?\s*"
                   r"(?P<op>>=|<=|>|<)\s*(?P<value>[-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*$")


def parse_when(text: str) -> dict[str, Any]:
    """``share(label=negative) > 0.3`` -> ``{"metric": "share", "label": "negative", "op": ">", "value": 0.3}``."""
    m = _WHEN.match(text)
    if m is None:
        raise ValueError(f"`when: {text}` is not a condition; write e.g. share(label=negative) > 0.3")
    fn, kind = m["fn"], m["kind"]
    args = [a.strip() for a in (m["args"] or "").split(",") if a.strip()]
    plain = [a.split("=", 1)[-1].strip() for a in args]
    out: dict[str, Any] = {"op": m["op"], "value": float(m["value"])}
    if fn == "share" and len(plain) == 1:
        out.update(metric="share", label=plain[0])
    elif fn in ("ood_rate", "low_confidence_rate", "count", "mean_confidence") and not args and not kind:
        out["metric"] = fn
    elif fn == "mean" and plain == ["confidence"]:
        out["metric"] = "mean_confidence"
    elif fn == "quantile" and len(plain) == 2 and plain[0] == "confidence":
        out.update(metric="confidence_quantile", q=float(plain[1]))
    elif fn == "drift" and 1 <= len(plain) <= 2:
        out.update(metric="drift", feature=plain[0], **({"measure": plain[1]} if len(plain) == 2 else {}))
    elif fn == "guard" and len(plain) == 1:
        out.update(metric="guard_rate" if kind == "rate" else "guard_count", guard=plain[0])
    else:
        raise ValueError(f"`when: {text}`: unknown condition {fn}({', '.join(args)}); known: share(label=L), "
                         "ood_rate, low_confidence_rate, mean(confidence), quantile(confidence, q), "
                         "drift(feature[, psi|js]), guard(type) count|rate, count")
    return out


class Rule(SpecModel):
    """One alert rule; the fields a metric needs are checked together with it."""

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=100)
    metric: Literal["share", "ood_rate", "low_confidence_rate", "mean_confidence", "confidence_quantile",
                    "drift", "guard_count", "guard_rate", "count"]
    op: Literal[">", ">=", "<", "<="] = ">"
    value: float
    label: str | None = None  # share
    feature: Literal["label", "confidence", "length", "script"] | None = None  # drift
    measure: Literal["psi", "js"] = "psi"  # drift
    guard: str | None = None  # guard_count / guard_rate: a finding type, or pii for any PII type
    q: float | None = Field(None, gt=0, lt=1)  # confidence_quantile
    over: str | int = "5m"
    min_count: int | None = Field(None, ge=1)
    for_: str | int = Field("0s", alias="for")
    cooldown: str | int = "5m"
    severity: str = "warning"
    summary: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _when(cls, data: Any) -> Any:
        """``when:`` stands for metric/label/feature/guard/q/op/value; it may not be mixed with them."""
        if isinstance(data, dict) and "when" in data:
            when = data["when"]
            if not isinstance(when, str):
                raise ValueError("`when` must be a string such as share(label=negative) > 0.3")
            parsed = parse_when(when)
            clash = sorted(set(parsed) & set(data))
            if clash:
                raise ValueError(f"`when` already sets {', '.join(clash)}; give one or the other")
            data = {**{k: v for k, v in data.items() if k != "when"}, **parsed}
        return data

    @model_validator(mode="after")
    def _needs(self) -> Rule:
        need = {"share": "label", "drift": "feature", "guard_count": "guard", "guard_rate": "guard",
                "confidence_quantile": "q"}.get(self.metric)
        if need and getattr(self, need) is None:
            raise ValueError(f"metric {self.metric} needs `{need}`")
        for key in ("over", "for_", "cooldown"):
            seconds(getattr(self, key))
        if seconds(self.over) <= 0:
            raise ValueError("`over` must be a positive duration")
        return self

    @property
    def window_s(self) -> float:
        return seconds(self.over)

    @property
    def needed(self) -> int:
        """Records the window must hold before the rule is judged (drift wants more: it compares shapes)."""
        return self.min_count or (200 if self.metric == "drift" else 50 if self.metric != "count" else 1)

    def describe(self) -> str:
        arg = self.label or self.feature or self.guard or (f"q={self.q}" if self.q else "")
        return f"{self.metric}{f'({arg})' if arg else ''} {self.op} {self.value:g} over {self.over}"


class RuleFile(SpecModel):
    rules: list[Rule] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> RuleFile:
        names = [r.name for r in self.rules]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"rule names must be unique; repeated: {', '.join(dup)}")
        return self


def load_rules(path: str | Path) -> list[Rule]:
    """The rules of an alerts YAML file (``rules:`` list, or a bare list).

    Raises:
        LmkError: unreadable file, bad YAML, or a rule that does not validate (named by its key path).
    """
    from .. import specyaml

    path = Path(path)
    try:
        data = specyaml.load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        raise LmkError(f"cannot read the alert rules file {path}: {e}", where=str(path),
                       fix="pass a readable YAML file with a `rules:` list") from e
    except Exception as e:  # yaml.YAMLError and the bounded loader's refusals
        raise LmkError(f"the alert rules file is not valid YAML: {e}", where=str(path)) from e
    if isinstance(data, list):
        data = {"rules": data}
    try:
        return RuleFile.model_validate(data).rules
    except ValidationError as e:
        first = e.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise LmkError(f"alert rule {loc or '(file)'}: {first['msg']} ({len(e.errors())} problem(s))",
                       where=f"{path}: {loc}", fix="see docs/trust.md, 'Monitoring, alerts and audit', for the "
                       "rule fields: name, metric, op, value, label/feature/guard/q, over, min_count, for, "
                       "cooldown") from e


def metric_value(rule: Rule, monitor: Monitor, s: Stats) -> float | None:
    """The rule's metric over a window's totals, or None when the window cannot say (no data for it)."""
    m = rule.metric
    if m == "count":
        return float(s.n)
    if m == "share":
        return s.labels.get(rule.label or "", 0) / s.n if s.n else None
    if m == "ood_rate":
        return s.ood_hits / s.ood_n if s.ood_n else None
    if m == "low_confidence_rate":
        return s.low_hits / s.low_n if s.low_n else None
    if m == "mean_confidence":
        return s.conf_sum / s.conf_n if s.conf_n else None
    if m == "confidence_quantile":
        return quantile(s, rule.q or 0.5)
    if m in ("guard_count", "guard_rate"):
        hits = sum(v for k, v in s.guards.items() if k == rule.guard or (rule.guard == "pii" and k in PII_TYPES))
        return float(hits) if m == "guard_count" else (hits / s.n if s.n else None)
    from .drift import compare

    found = compare(monitor.reference, rule.feature or DRIFT_FEATURES[0], s)
    return None if found is None else found[rule.measure]


@dataclass
class RuleState:
    state: str = "inactive"  # inactive | pending | firing
    since: float | None = None  # when the condition began to hold
    fired_at: float | None = None
    resolved_at: float | None = None
    value: float | None = None
    fired: int = 0


@dataclass(frozen=True)
class AlertEvent:
    """A rule fired or resolved: what goes to the log, the webhook, the audit log and the CLI."""

    rule: Rule
    status: str  # firing | resolved
    value: float | None
    at: float
    started_at: float
    count: int

    def to_json(self) -> dict[str, Any]:
        from datetime import datetime

        def iso(t: float) -> str:
            return datetime.fromtimestamp(t, tz=UTC).isoformat().replace("+00:00", "Z")

        r = self.rule
        return {"status": self.status,
                "labels": {"alertname": r.name, "severity": r.severity, "metric": r.metric,
                           **{k: v for k, v in (("label", r.label), ("feature", r.feature), ("guard", r.guard))
                              if v is not None}},
                "annotations": {"summary": r.summary or r.describe(), "description": r.describe()},
                "startsAt": iso(self.started_at), "endsAt": iso(self.at) if self.status == "resolved" else None,
                "value": self.value, "count": self.count, "time": self.at}


class RuleEngine:
    """Judges every rule against the monitor and moves its state; returns the transitions."""

    def __init__(self, rules: list[Rule], monitor: Monitor) -> None:
        self.rules = rules
        self.monitor = monitor
        self.states = {r.name: RuleState() for r in rules}
        for rule in rules:
            monitor.add_window(rule.window_s)

    def evaluate(self, now: float) -> list[AlertEvent]:
        events = []
        for rule in self.rules:
            s = self.monitor.stats(rule.window_s)
            value = metric_value(rule, self.monitor, s) if s.n >= rule.needed else None
            event = self._step(rule, self.states[rule.name], value, s.n, now)
            if event is not None:
                events.append(event)
        return events

    def _step(self, rule: Rule, st: RuleState, value: float | None, n: int, now: float) -> AlertEvent | None:
        st.value = value
        holds = value is not None and OPS[rule.op](float(value), rule.value)
        if st.state == "firing":
            if holds:
                return None
            st.state, st.since, st.resolved_at = "inactive", None, now
            return AlertEvent(rule, "resolved", value, now, st.fired_at or now, n)
        if not holds:
            st.state, st.since = "inactive", None
            return None
        if st.resolved_at is not None and now - st.resolved_at < seconds(rule.cooldown):
            return None  # cooling down after the last alert: the same burst does not fire twice
        if st.state == "inactive":
            st.state, st.since = "pending", now
        if now - (st.since or now) >= seconds(rule.for_):
            st.state, st.fired_at = "firing", now
            st.fired += 1
            return AlertEvent(rule, "firing", value, now, now, n)
        return None

    def snapshot(self) -> list[dict[str, Any]]:
        return [{"name": r.name, "rule": r.describe(), "state": self.states[r.name].state,
                 "value": self.states[r.name].value, "fired": self.states[r.name].fired} for r in self.rules]
