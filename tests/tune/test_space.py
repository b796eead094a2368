"""The search space: parsing, the default space per method, and every refusal (unknown key, empty range...)."""

from __future__ import annotations

import pytest

from lmkernel.errors import LmkError
from lmkernel.search.space import check_space, default_space, parse_space, read_space, set_args
from lmkernel.spec import load_spec


def test_parse_every_type_to_optuna_distributions():
    space = parse_space({
        "train.lr": {"type": "float", "low": 1e-5, "high": 1e-3, "log": True},
        "train.batch_size": {"type": "categorical", "choices": [8, 16, 32]},
        "train.epochs": {"type": "int", "low": 1, "high": 4},
        "train.warmup_ratio": {"type": "float", "low": 0.0, "high": 0.2, "step": 0.05},
    }, "space.yaml")
    dists = {p.key: p.distribution() for p in space}
    assert dists["train.lr"].log and dists["train.lr"].low == 1e-5
    assert dists["train.batch_size"].choices == (8, 16, 32)
    assert (dists["train.epochs"].low, dists["train.epochs"].high) == (1, 4)
    assert dists["train.warmup_ratio"].step == 0.05
    assert space[0].to_json() == {"type": "float", "low": 1e-5, "high": 1e-3, "log": True}


@pytest.mark.parametrize("tree, words", [
    ({}, "empty"),
    ([1, 2], "not a mapping"),
    ({"train.lr": 0.1}, "expected a mapping"),
    ({"train.lr": {"type": "uniform", "low": 0, "high": 1}}, "type must be one of"),
    ({"train.lr": {"type": "float", "low": 1e-3}}, "high is missing"),
    ({"train.lr": {"type": "float", "low": 1e-3, "high": 1e-5}}, "range is empty"),
    ({"train.epochs": {"type": "int", "low": 5, "high": 2}}, "range is empty"),
    ({"train.epochs": {"type": "int", "low": 1.5, "high": 2}}, "must be an integer"),
    ({"train.lr": {"type": "float", "low": "a", "high": 1}}, "must be a number"),
    ({"train.lr": {"type": "float", "low": 0.0, "high": 1e-3, "log": True}}, "log range needs low > 0"),
    ({"train.lr": {"type": "float", "low": 1e-5, "high": 1e-3, "log": True, "step": 1e-5}}, "step must be"),
    ({"train.lr": {"type": "float", "low": 1e-5, "high": 1e-3, "choices": [1]}}, "unknown field"),
    ({"train.batch_size": {"type": "categorical", "choices": []}}, "choices is empty"),
    ({"train.batch_size": {"type": "categorical", "choices": [8, 8]}}, "repeat"),
    ({"train.batch_size": {"type": "categorical", "choices": [[8]]}}, "plain values"),
    ({"train..lr": {"type": "float", "low": 1, "high": 2}}, "not a dotted spec key"),
])
def test_malformed_space_is_refused_with_where_and_fix(tree, words):
    with pytest.raises(LmkError) as e:
        parse_space(tree, "space.yaml")
    assert words in e.value.what
    assert e.value.where.startswith("space.yaml") and e.value.fix


def test_space_file_numbers_read_as_in_a_spec(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text("train.lr: {type: categorical, choices: [3e-05, 1e-4]}\n"
                    "train.weight_decay: {type: float, low: 1e-5, high: 1e-1, log: true}\n", encoding="utf-8")
    lr, wd = read_space(path)
    assert lr.choices == (3e-05, 1e-4) and (wd.low, wd.high) == (1e-5, 1e-1)


def test_space_file_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train.lr: {type: float, low: 1\n", encoding="utf-8")
    with pytest.raises(LmkError, match="not valid YAML"):
        read_space(bad)
    with pytest.raises(LmkError, match="cannot read"):
        read_space(tmp_path / "missing.yaml")


def test_unknown_key_is_refused_against_the_spec(spec_file):
    space = parse_space({"train.lrr": {"type": "float", "low": 1e-4, "high": 1e-3}}, "space.yaml")
    with pytest.raises(LmkError) as e:
        check_space(space, spec_file, [])
    assert "train.lrr" in e.value.what and "unknown key" in e.value.what
    assert "train.lr" in e.value.fix  # the spec's own did-you-mean


def test_a_range_end_the_spec_refuses_is_named(spec_file):
    space = parse_space({"train.warmup_ratio": {"type": "float", "low": 0.0, "high": 1.5}}, "space.yaml")
    with pytest.raises(LmkError, match=r"refuses train.warmup_ratio=1.5"):
        check_space(space, spec_file, [])


def test_default_space_follows_the_method(spec_file):
    spec = load_spec(spec_file, [])
    keys = {p.key: p for p in default_space(spec)}
    assert {"train.lr", "train.batch_size", "train.epochs", "train.weight_decay", "train.warmup_ratio"} <= set(keys)
    assert "tuning.lora.r" not in keys
    lr = keys["train.lr"]
    assert lr.log and lr.low < 1e-4 < lr.high  # full's default lr sits inside the range
    lora = {p.key for p in default_space(load_spec(spec_file, ["tuning.method=lora"]))}
    assert {"tuning.lora.r", "tuning.lora.alpha"} <= lora
    check_space(default_space(spec), spec_file, [])  # every default range is one the spec accepts


def test_set_args_round_trip_through_the_spec_loader(spec_file):
    sets = set_args({"train.lr": 0.00123, "train.batch_size": 8, "data.text_column": "text"})
    spec = load_spec(spec_file, sets)
    assert spec.train.lr == 0.00123 and spec.train.batch_size == 8 and spec.data.text_column == "text"


def test_pruners_by_name():
    import optuna

    from lmkernel.search.study import make_pruner

    assert isinstance(make_pruner("median"), optuna.pruners.MedianPruner)
    assert isinstance(make_pruner("hyperband"), optuna.pruners.HyperbandPruner)
    assert isinstance(make_pruner("none"), optuna.pruners.NopPruner)
    with pytest.raises(LmkError, match="unknown pruner") as e:
        make_pruner("asha")
    assert e.value.where == "--pruner" and "median" in e.value.fix


def test_resource_is_percent_of_an_epoch():
    from lmkernel.search.trial import resource

    assert [resource(s, 32) for s in (16, 32, 64, 96)] == [50, 100, 200, 300]
    assert resource(63, 63) == resource(125, 125) == 100  # batch sizes differ, the point is the same


def test_a_process_that_is_not_our_trial_is_left_alone(tmp_path):
    import subprocess
    import sys

    from lmkernel.search.trial import end_orphan

    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert not end_orphan(other.pid, str(tmp_path / "trials" / "0000"))
        assert other.poll() is None
        assert not end_orphan(None, "") and not end_orphan(-1, "x")
    finally:
        other.kill()
        other.wait()
