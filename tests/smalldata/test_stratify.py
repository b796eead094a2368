"""Stratified data.split for classification, and the inputs it refuses."""

from __future__ import annotations

from collections import Counter

import pytest

from lmkernel.data.read import read_data
from lmkernel.data.stratify import stratified_split
from lmkernel.errors import LmkError
from lmkernel.spec import parse_spec
from lmkernel.tasks import get_task
from lmkernel.tasks.base import Example


def _rows(counts: dict[str, int]) -> list[Example]:
    labels = [lab for lab, n in counts.items() for _ in range(n)]
    return [Example(f"{lab} text {i}", lab, "train.csv", 2 + i) for i, lab in enumerate(labels)]


def _label(e: Example) -> str:
    return e.label


def test_every_split_keeps_the_label_shares():
    train, held = stratified_split(_rows({"a": 20, "b": 20, "c": 20}), {"validation": 0.2, "test": 0.2}, 42, _label)
    assert (len(train), len(held["validation"]), len(held["test"])) == (36, 12, 12)
    for rows in (train, held["validation"], held["test"]):
        counts = Counter(e.label for e in rows)
        assert len(set(counts.values())) == 1  # 12/4/4 of each label
    all_rows = train + held["validation"] + held["test"]
    assert len({(e.text) for e in all_rows}) == 60  # a partition: no row twice, none lost


def test_unbalanced_labels_stay_in_proportion():
    _, held = stratified_split(_rows({"a": 40, "b": 15, "c": 5}), {"validation": 0.2}, 1, _label)
    assert Counter(e.label for e in held["validation"]) == {"a": 8, "b": 3, "c": 1}


def test_the_seed_decides_the_rows_and_file_order_is_kept():
    rows = _rows({"a": 30, "b": 30})
    one = stratified_split(rows, {"validation": 0.2}, 7, _label)
    assert one == stratified_split(rows, {"validation": 0.2}, 7, _label)
    assert one[1] != stratified_split(rows, {"validation": 0.2}, 8, _label)[1]
    assert [e.line for e in one[0]] == sorted(e.line for e in one[0])


def test_a_label_always_keeps_a_training_row():
    train, held = stratified_split(_rows({"a": 2, "b": 30}), {"validation": 0.4, "test": 0.4}, 3, _label)
    assert Counter(e.label for e in train)["a"] >= 1


def test_a_label_with_one_example_is_refused():
    with pytest.raises(LmkError) as e:
        stratified_split(_rows({"a": 10, "b": 10, "rare": 1}), {"validation": 0.2}, 1, _label)
    assert "'rare' has a single example" in e.value.what
    assert e.value.where == "train.csv line 22" and "data.validation" in e.value.fix


def test_more_labels_than_held_out_rows_is_refused():
    with pytest.raises(LmkError) as e:
        stratified_split(_rows({f"l{i}": 3 for i in range(10)}), {"validation": 0.1}, 1, _label)
    assert "fewer than the 10 labels" in e.value.what
    assert e.value.where == "data.split.validation" and "at least 0.34" in e.value.fix


def test_read_data_stratifies_classification(tmp_path):
    path = tmp_path / "t.csv"
    rows = [(f"good thing {i}", "pos") for i in range(40)] + [(f"bad thing {i}", "neg") for i in range(20)]
    path.write_text("text,label\n" + "".join(f"{t},{lab}\n" for t, lab in rows), encoding="utf-8")
    spec = parse_spec({"data": {"train": str(path), "split": {"validation": 0.2, "test": 0.2}},
                       "model": {"name": "minilm"}})
    splits, labels = read_data(get_task("classification", spec.task), spec)
    assert {k: len(v.examples) for k, v in splits.items()} == {"train": 36, "validation": 12, "test": 12}
    assert Counter(e.label for e in splits["validation"].examples) == {"pos": 8, "neg": 4}
