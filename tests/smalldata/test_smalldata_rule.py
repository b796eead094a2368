"""The small-data rule (training/autoconf.py): its values by data size, and values a spec sets left alone."""

from __future__ import annotations

import math

import pytest

from lmkernel.spec import TrainSpec, parse_spec
from lmkernel.training import autoconf


def _spec(tmp_path, task: str = "classification", **train):
    return parse_spec({"task": {"type": task}, "data": {"train": str(tmp_path / "t.csv")}, "model": {"name": "minilm"},
                       "tuning": {"method": "full"}, "train": train})


@pytest.mark.parametrize(("rows", "labels", "batch", "epochs", "lr_scale"), [
    (60, 3, 8, 30, math.sqrt(300 / 240)),  # 8 steps an epoch: the epoch cap still leaves few steps, lr raised
    (600, 30, 8, 4, 1.0),  # the 30 intents x 20: 75 steps an epoch, 300 steps in 4
    (3_850, 77, 16, 4, 1.0),  # 77 labels want 770 steps: 241 an epoch
    (20_000, 2, 32, 3, 1.0),  # large data: the fixed defaults, unchanged
    (60_000, 77, 32, 3, 1.0),
])
def test_rule_values_by_size(rows, labels, batch, epochs, lr_scale):
    choice = autoconf.decide(rows, labels, TrainSpec(), default_lr=1e-4)
    assert choice.chosen["batch_size"] == batch
    assert choice.chosen["epochs"] == epochs
    assert choice.chosen["lr"] == pytest.approx(1e-4 * lr_scale)
    assert choice.steps == math.ceil(rows / batch) * epochs
    assert choice.kept == []


@pytest.mark.parametrize(("rows", "every"), [(60, 104), (600, 150), (3_850, None)])
def test_short_epochs_checkpoint_every_100_steps_or_more(rows, every):
    choice = autoconf.decide(rows, 3, TrainSpec(), 1e-4)
    assert choice.chosen.get("checkpoint_every") == every  # a whole number of epochs; long epochs: each one
    assert "checkpoint_every" not in autoconf.decide(60, 3, TrainSpec(eval_every=5), 1e-4).chosen


def test_more_processes_and_accumulation_count_in_the_steps():
    one = autoconf.decide(600, 30, TrainSpec(), 1e-4)
    four = autoconf.decide(600, 30, TrainSpec(grad_accum=2), 1e-4, world=2)
    assert four.chosen["epochs"] > one.chosen["epochs"]  # a step eats 4x the rows: more epochs for 300 steps


def test_values_the_spec_sets_are_kept(tmp_path):
    spec = _spec(tmp_path, batch_size=32, lr=3e-3)
    assert autoconf.unset_keys(spec.train) == {"epochs"}
    choice = autoconf.apply(spec, 600, 30)
    assert spec.train.batch_size == 32 and spec.train.lr == 3e-3  # untouched
    assert spec.train.epochs == 16  # chosen around the set batch: 19 steps an epoch, 300 wanted
    assert choice.chosen == {"epochs": 16, "checkpoint_every": 114}  # 6 epochs of 19 steps
    assert "set in the spec: train.batch_size, train.lr" in choice.text()


def test_a_spec_that_sets_everything_or_turns_the_rule_off_is_unchanged(tmp_path):
    full = _spec(tmp_path, batch_size=32, epochs=3, lr=1e-4)
    assert autoconf.apply(full, 600, 30) is None
    off = _spec(tmp_path, auto=False)
    assert autoconf.apply(off, 600, 30) is None
    assert (off.train.batch_size, off.train.epochs, off.train.lr) == (32, 3, 1e-4)


def test_other_tasks_keep_the_fixed_defaults(tmp_path):
    qa = _spec(tmp_path, task="qa")
    assert autoconf.apply(qa, 600, 0) is None
    assert (qa.train.batch_size, qa.train.epochs) == (32, 3)


def test_ner_gets_the_rule(tmp_path):
    spec = _spec(tmp_path, task="ner")
    assert autoconf.apply(spec, 400, 9) is not None
    assert spec.train.batch_size == 8


def test_the_method_default_lr_counts_as_unset_and_an_explicit_value_as_set(tmp_path):
    spec = _spec(tmp_path)
    assert spec.train.lr == 1e-4  # the method's default is filled in, as before
    assert autoconf.unset_keys(spec.train) == {"batch_size", "epochs", "lr"}
    assert autoconf.unset_keys(_spec(tmp_path, lr=1e-4).train) == {"batch_size", "epochs"}


def test_the_chosen_values_survive_the_saved_spec(tmp_path):
    spec = _spec(tmp_path)
    autoconf.apply(spec, 600, 30)
    again = parse_spec(__import__("yaml").safe_load(spec.to_yaml()))  # what resume / inspect read
    assert (again.train.batch_size, again.train.epochs) == (8, 4)
    assert autoconf.apply(again, 600, 30) is None  # a resumed run keeps what the first start chose


def test_max_steps_set_by_the_spec_is_the_step_count():
    choice = autoconf.decide(36, 3, TrainSpec(max_steps=50), 1e-4)
    assert choice.steps == 50
    assert choice.chosen["lr"] == pytest.approx(2e-4)  # sqrt(300/50) capped at 2
