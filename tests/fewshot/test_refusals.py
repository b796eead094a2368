"""tuning.method fewshot refuses, before any training, the settings its own training would silently ignore."""

from __future__ import annotations

from pathlib import Path

import pytest

import lmkernel
from lmkernel.errors import LmkError, SpecErrors
from lmkernel.spec import load_spec, parse_spec
from tests.fewshot.test_fewshot import _few_shot_spec


def _tree(**train) -> dict:
    return {"data": {"train": "train.csv"}, "model": {"name": "minilm"},
            "tuning": {"method": "fewshot"}, "train": train}


@pytest.mark.parametrize(("train", "key"), [
    ({"class_weights": "balanced"}, "train.class_weights"),
    ({"class_weights": {"positive": 2.0}}, "train.class_weights"),
    ({"adversarial": "fgm"}, "train.adversarial"),
    ({"adversarial": {"method": "pgd", "steps": 2}}, "train.adversarial"),
    ({"rdrop": 1.0}, "train.rdrop"),
    ({"label_smoothing": 0.1}, "train.label_smoothing"),
    ({"grad_accum": 4}, "train.grad_accum"),
    ({"eval_every": 10}, "train.eval_every"),
    ({"patience": 2}, "train.patience"),
])
def test_each_ignored_training_option_is_refused_naming_its_key(train, key):
    with pytest.raises(LmkError) as e:
        parse_spec(_tree(**train))
    assert not isinstance(e.value, SpecErrors)
    assert e.value.where == key and key in e.value.what and "fewshot" in e.value.what
    assert "remove" in e.value.fix


def test_a_continual_section_is_refused():
    tree = _tree() | {"continual": {"method": "replay"}}
    with pytest.raises(LmkError) as e:
        parse_spec(tree)
    assert e.value.where == "continual" and "continual:" in e.value.fix


def test_several_ignored_options_are_listed_together():
    with pytest.raises(SpecErrors) as e:
        parse_spec(_tree(rdrop=1.0, label_smoothing=0.1))
    assert [err.where for err in e.value.errors] == ["train.rdrop", "train.label_smoothing"]


def test_the_defaults_and_the_options_it_reads_are_accepted():
    spec = parse_spec(_tree(class_weights="none", label_smoothing=0.0, adversarial="none", grad_accum=1,
                            lr=1e-4, warmup_ratio=0.1, max_steps=50, grad_clip=0.5, epochs=3, batch_size=8))
    assert spec.tuning.method == "fewshot"
    assert spec.train.lr == 1e-4
    # the same options stay fine for the standard loop
    parse_spec(_tree(class_weights="balanced", rdrop=1.0) | {"tuning": {"method": "full"}})


def test_a_key_set_on_the_command_line_is_refused_too(tmp_path, tiny_bert, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = _few_shot_spec(tmp_path, tiny_bert)
    with pytest.raises(LmkError) as e:
        load_spec(spec, ["train.class_weights=balanced"])
    assert e.value.where == "train.class_weights"


def test_continue_from_is_refused_before_anything_runs(tmp_path, tiny_bert, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = load_spec(_few_shot_spec(tmp_path, tiny_bert))
    with pytest.raises(LmkError) as e:
        lmkernel.run(spec, progress=False, continue_from=tmp_path / "runs" / "old")
    assert e.value.where == "--continue-from" and "drop --continue-from" in e.value.fix
    assert not (tmp_path / "runs" / "fs").exists()  # refused before a run directory was made


def test_a_plain_few_shot_spec_with_augmentation_still_validates(tmp_path: Path):
    spec = parse_spec(_tree() | {"data": {"train": "train.csv", "augment": {"ops": ["swap"]}}})
    assert spec.data.augment is not None  # augmentation adds training rows: the pairs are drawn from them too


def test_the_small_data_rule_leaves_few_shot_alone():
    """The rule sizes the training loop's steps; few-shot trains pairs its own way and keeps its own lr."""
    from lmkernel.training import autoconf

    spec = parse_spec(_tree())
    assert autoconf.apply(spec, rows=16, labels=2) is None
    assert spec.train.lr == 2e-5 and "lr" not in spec.train.model_fields_set
