"""Calibration, slices, warnings, thresholds and the trust profile's file format, on hand-made numbers."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lmkernel.errors import LmkError
from lmkernel.evaluation.analysis import calibration, prediction_warnings
from lmkernel.evaluation.slices import length_buckets, script_of
from lmkernel.trust.calibrate import histogram, low_confidence_threshold, ood_threshold, reference
from lmkernel.trust.ood import Mahalanobis
from lmkernel.trust.profile import TRUST_JSON, TRUST_TENSORS, TrustProfile, load_profile, save_profile


def test_ece_and_mce_on_a_hand_made_case():
    # bin (0.6, 0.667]: 4 texts at 0.65, 2 right -> gap 0.15; bin (0.933, 1]: 6 at 0.95, all right -> gap 0.05
    conf = [0.65] * 4 + [0.95] * 6
    correct = [True, True, False, False] + [True] * 6
    c = calibration(conf, correct)
    assert c["ece"] == pytest.approx(0.4 * 0.15 + 0.6 * 0.05)
    assert c["mce"] == pytest.approx(0.15)
    assert [b["count"] for b in c["bins"]] == [4, 6]
    assert calibration([1.0, 1.0], [True, True])["ece"] == pytest.approx(0.0)


def test_script_and_length_slices():
    assert [script_of(t) for t in ["the film was great", "房间太差了", "Привет мир", "12345", "很好 ok"]] == \
        ["latin", "han", "other", "latin", "han"]
    buckets = length_buckets([1, 2, 3, 4, 5, 6, 7, 8])
    assert len(set(buckets)) == 4 and buckets[0].startswith("1-") and buckets[-1].endswith("-8 chars")


def test_single_class_and_chance_warnings():
    gold = [0, 1] * 20
    one_class = prediction_warnings(gold, [0] * 40, ["a", "b"])
    assert any("predicted 'a' for 100%" in w for w in one_class)
    assert any("within noise of chance" in w for w in one_class)
    assert prediction_warnings(gold, gold, ["a", "b"]) == []
    assert prediction_warnings([0, 1], [0, 0], ["a", "b"]) == []  # too few examples to judge


def test_low_confidence_threshold_is_where_validation_accuracy_drops():
    conf = np.array([0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.9, 0.95, 0.97, 0.99])
    correct = np.array([0, 0, 1, 0, 0, 1, 1, 1, 1, 1], dtype=bool)
    t, how = low_confidence_threshold(conf, correct)
    # 60 % accurate overall: the target is 30 %; the 5 texts below 0.55 are right once (20 %), the 6 below 0.9 twice
    assert t == pytest.approx(0.55) and "under 30%" in how and "5 of 10" in how
    weak = np.tile([True, False, False], 20)  # 33 % accurate: the target is half that, not 50 %
    t, how = low_confidence_threshold(np.linspace(0.1, 0.4, 60), weak)
    assert "under 17%" in how or "quantile" in how
    t, how = low_confidence_threshold(np.linspace(0.5, 1, 40), np.ones(40, dtype=bool))
    assert "quantile" in how and 0.5 < t < 0.55
    t, _ = ood_threshold(np.arange(100.0))
    assert t == pytest.approx(94.05)


def test_reference_statistics_follow_the_schema():
    ref = reference(["good film", "房间太差", "bad"], ["pos", "neg", "neg"], [0.9, 0.6, 0.95], ["neg", "pos"],
                    [False, True, False], [False, True, False])
    assert ref["label_shares"] == {"neg": pytest.approx(2 / 3, abs=1e-6), "pos": pytest.approx(1 / 3, abs=1e-6)}
    assert sum(ref["confidence"]["shares"]) == pytest.approx(1)
    assert len(ref["length"]["edges"]) == len(ref["length"]["shares"]) + 1
    assert ref["script_shares"]["han"] == pytest.approx(1 / 3, abs=1e-6)
    assert ref["ood_rate"] == pytest.approx(1 / 3, abs=1e-6)
    assert histogram([5.0, -1.0], [0.0, 1.0, 2.0])["shares"] == [0.5, 0.5]  # outside the edges: end bins


def _synthetic_profile(rng) -> TrustProfile:
    centres = np.eye(8)[:3] * 4
    labels = rng.integers(0, 3, 300)
    feats = centres[labels] + rng.normal(0, 0.3, (300, 8))
    det = Mahalanobis.fit(feats, labels, 3)
    t, how = ood_threshold(det.score(feats))
    data = {"version": 1, "low_confidence": {"threshold": 0.5, "how": "test"},
            "ood": {"method": "mahalanobis", "threshold": t, "how": how}, "reference": {"n": 300}}
    return TrustProfile(data, det)


def test_mahalanobis_flags_foreign_features_and_round_trips(tmp_path):
    rng = np.random.default_rng(0)
    profile = _synthetic_profile(rng)
    save_profile(tmp_path, profile)
    loaded = load_profile(tmp_path)
    probs = np.array([[0.9, 0.05, 0.05], [0.4, 0.3, 0.3]])
    feats = np.array([np.eye(8)[1] * 4, np.eye(8)[7] * 4])  # class 1's centre; a direction no class has
    flags = loaded.flags(probs, feats)
    assert [f["ood"] for f in flags] == [False, True]
    assert [f["low_confidence"] for f in flags] == [False, True]
    assert flags[1]["ood_score"] > flags[0]["ood_score"]
    assert loaded.flags(probs, None)[0] == {"ood": None, "ood_score": None, "low_confidence": False}
    assert loaded.flags(probs, np.ones((2, 5)))[0]["ood"] is None  # features of another width: not measured
    assert load_profile(tmp_path / "nothing-here") is None


def test_text_the_vocabulary_cannot_read_is_ood_even_near_a_class_mean():
    """Features of a text of mostly unknown tokens can land near a class mean; its unknown share flags it."""
    profile = _synthetic_profile(np.random.default_rng(0))
    profile.data["ood"]["unknown_share"] = {"threshold": 0.2, "validation_p99": 0.0, "how": "test"}
    probs = np.array([[0.9, 0.05, 0.05]] * 3)
    feats = np.array([np.eye(8)[1] * 4] * 3)  # all at class 1's centre: the detector passes them
    unk = 1
    ids = [[2, 5, 6, 7, 3], [2, unk, unk, 7, 3], [2, unk, 5, 6, 3]]  # 0 %, 40 %, 20 % unknown
    assert [f["ood"] for f in profile.flags(probs, feats, ids, unk)] == [False, True, False]
    assert [f["ood"] for f in profile.flags(probs, None, ids, unk)] == [None, True, None]
    assert [f["ood"] for f in profile.flags(probs, feats, ids, None)] == [False, False, False]  # no unknown token
    assert [f["ood"] for f in profile.flags(probs, feats)] == [False, False, False]  # ids not given


def test_unknown_share_threshold_from_validation(tiny_bert):
    from transformers import AutoTokenizer

    from lmkernel.trust.calibrate import UNKNOWN_FLOOR, unknown_share_threshold

    tok = AutoTokenizer.from_pretrained(str(tiny_bert))
    clean = unknown_share_threshold(tok, ["great film", "太差了"], 32)
    assert clean["validation_p99"] == 0 and clean["threshold"] == UNKNOWN_FLOOR
    noisy = unknown_share_threshold(tok, ["§ ¤ ¶ great"] * 10, 32)  # 3 of 6 tokens unknown ([CLS]/[SEP] count)
    assert noisy["validation_p99"] == pytest.approx(0.5) and noisy["threshold"] == pytest.approx(0.6)
    assert unknown_share_threshold(tok, [], 32) is None


@pytest.mark.parametrize("damage", ["{not json", "[]", '{"version": 1}', "bad-threshold", "bad-method",
                                    "bad-unknown"])
def test_damaged_trust_json_is_an_lmk_error_naming_file_and_fix(tmp_path, damage):
    save_profile(tmp_path, _synthetic_profile(np.random.default_rng(1)))
    data = json.loads((tmp_path / TRUST_JSON).read_text())
    if damage == "bad-threshold":
        data["ood"]["threshold"] = "high"
        damage = json.dumps(data)
    elif damage == "bad-method":
        data["ood"]["method"] = "vibes"
        damage = json.dumps(data)
    elif damage == "bad-unknown":
        data["ood"]["unknown_share"] = {"threshold": None}
        damage = json.dumps(data)
    (tmp_path / TRUST_JSON).write_text(damage)
    with pytest.raises(LmkError) as e:
        load_profile(tmp_path)
    assert e.value.where == str(tmp_path / TRUST_JSON)
    assert "delete trust.json" in e.value.fix and "retrain" in e.value.fix


def test_missing_or_damaged_tensors_are_an_lmk_error(tmp_path):
    save_profile(tmp_path, _synthetic_profile(np.random.default_rng(2)))
    (tmp_path / TRUST_TENSORS).write_bytes(b"garbage")
    with pytest.raises(LmkError) as e:
        load_profile(tmp_path)
    assert e.value.where == str(tmp_path / TRUST_TENSORS) and "retrain" in e.value.fix
