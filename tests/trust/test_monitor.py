"""Monitor windows and drift: counts, expiry, skipped fields, a synthetic shift detected, noise not."""

from __future__ import annotations

import random

import pytest

from lmkernel.trust.drift import build_reference, compare
from lmkernel.trust.monitor import Monitor, script_of, summary

EN = ["the results beat expectations", "shares fell sharply after the warning", "profit rose in the quarter",
      "the company kept its outlook", "sales were flat year on year"]
ZH = ["公司利润大幅增长", "股价下跌百分之五", "销售额与去年持平"]


def _stream(n: int, seed: int, zh_share: float = 0.0, t0: float = 1000.0, step: float = 0.1):
    rng = random.Random(seed)
    for i in range(n):
        zh = rng.random() < zh_share
        text = rng.choice(ZH if zh else EN)
        label = rng.choice(["negative", "neutral", "positive"])
        yield {"time": t0 + i * step, "label": label, "confidence": rng.uniform(0.55, 1.0), "ood": False,
               "low_confidence": False, "guards": [], "text": text}


def _reference(seed: int = 99) -> dict:
    rows = list(_stream(2000, seed))
    return build_reference([r["label"] for r in rows], [r["confidence"] for r in rows], [r["text"] for r in rows],
                           ood=[False] * len(rows), low_confidence=[False] * len(rows))


def test_windows_count_shares_and_expire():
    m = Monitor(windows=(60.0,))
    for i in range(100):
        m.observe({"time": 1000 + i * 0.1, "label": "neg" if i < 30 else "pos", "confidence": 0.9,
                   "ood": i < 10, "guards": ["email"] if i < 5 else []})
    s = summary(m.stats(60.0))
    assert s["count"] == 100
    assert s["label_shares"] == {"neg": 0.3, "pos": 0.7}
    assert s["ood_rate"] == pytest.approx(0.1)
    assert s["low_confidence_rate"] is None  # never given: skipped, not zero
    assert s["guards"] == {"email": 5}
    assert s["confidence"]["mean"] == pytest.approx(0.9)
    assert s["confidence"]["p50"] == pytest.approx(0.905)
    m.observe({"time": 1100.0, "label": "pos"})  # 90 s later: the first 100 are out of the 60 s window
    assert m.stats(60.0).n == 1
    m.expire(1200.0)
    assert m.stats(60.0).n == 0 and m.stats(60.0).labels == {}


def test_missing_fields_are_skipped():
    m = Monitor(windows=(60.0,))
    m.observe({"time": 5.0})
    s = summary(m.stats(60.0))
    assert s["count"] == 1 and s["label_shares"] == {} and s["confidence"]["mean"] is None
    assert s["ood_rate"] is None


def test_script_of():
    assert script_of("hello world") == "latin"
    assert script_of("公司利润 up") == "han"
    assert script_of("Привет мир") == "other"
    assert script_of("12345") == "latin"


def test_drift_small_on_stationary_large_on_shift():
    ref = _reference()
    m = Monitor(ref, windows=(300.0,))
    for rec in _stream(500, seed=1):
        m.observe(rec)
    calm = m.drift(300.0)
    assert all(d["psi"] < 0.05 for d in calm.values()), calm
    shifted = Monitor(ref, windows=(300.0,))
    for rec in _stream(500, seed=2, zh_share=0.2):
        shifted.observe(rec)
    drift = shifted.drift(300.0)
    assert drift["script"]["psi"] > 0.5 and drift["length"]["psi"] > 0.2
    assert drift["label"]["psi"] < 0.05  # labels did not move


def test_no_reference_or_too_few_records_compares_nothing():
    m = Monitor(None, windows=(60.0,))
    for rec in _stream(100, seed=3):
        m.observe(rec)
    assert m.drift(60.0) == {"label": None, "confidence": None, "length": None, "script": None}
    few = Monitor(_reference(), windows=(60.0,))
    for rec in _stream(10, seed=3):
        few.observe(rec)
    assert compare(few.reference, "script", few.stats(60.0)) is None


def test_observe_cost_is_small():
    import time

    m = Monitor(_reference())
    recs = list(_stream(5000, seed=4, step=0.01))
    start = time.perf_counter()
    for rec in recs:
        m.observe(rec)
    per = (time.perf_counter() - start) / len(recs)
    assert per < 0.5e-3, per


def test_reference_and_live_traffic_read_scripts_alike():
    """The trust profile's script shares and the monitor's live counts use one rule: a mixed or digits-only
    text must not land in one bin at training time and another when served (spurious script drift)."""
    from collections import Counter

    from lmkernel.trust.calibrate import reference
    from lmkernel.trust.monitor import SCRIPTS

    texts = ["苹果 iPhone 15 发布", "12345", "hello world", "公司利润大涨", "Привет мир"]
    ref = reference(texts, ["a"] * 5, [0.9] * 5, ["a"], None, [False] * 5)
    live = Counter(script_of(t) for t in texts)
    assert ref["script_shares"] == {k: round(live.get(k, 0) / 5, 6) for k in SCRIPTS}
