"""Spec values are taken as written and within bounds; hostile YAML is a message, never a hang or a
traceback (issue 21 items 3, 4, 5)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from lmkernel.errors import LmkError, SpecErrors
from lmkernel.spec import load_spec, save_spec

MINIMAL = "data: {train: d/train.csv}\n"


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "s.yaml"
    p.write_text(text, encoding="utf-8")
    return p


def error(tmp_path: Path, text: str, overrides: list[str] | None = None) -> str:
    with pytest.raises(LmkError) as e:
        load_spec(write(tmp_path, text), overrides)
    return str(e.value)


@pytest.mark.parametrize("section, value, expect", [
    ("train: {lr: .inf}", "", "train.lr: expected a finite number, got inf"),
    ("train: {lr: 1.0e+400}", "", "train.lr: expected a finite number, got inf"),
    ("train: {weight_decay: .inf}", "", "train.weight_decay: expected a finite number"),
    ("train: {grad_clip: .nan}", "", "train.grad_clip: expected a finite number"),
    ("train: {epochs: true}", "", "train.epochs: expected an integer, got True (bool)"),
    ("train: {lr: true}", "", "train.lr: expected a number, got True (bool)"),
    ("train: {batch_size: \"32\"}", "write the number without quotes",
     "train.batch_size: expected an integer, got '32'"),
    ("train: {threads: 1e9}", "", "train.threads: expected an integer"),
    ("train: {threads: 1000000000}", "", "train.threads: Input should be less than or equal to 4096"),
    ("seed: -1", "", "seed: Input should be greater than or equal to 0"),
    ("seed: 4294967296", "", "seed: Input should be less than or equal to 4294967295"),
    ("train: {epochs: 3.0}", "write train.epochs: 3 ", "train.epochs: expected an integer, got 3.0"),
    ("tuning: {lora: {dropout: .nan}}", "", "tuning.lora.dropout: expected a finite number"),
    ("tuning: {lora: {r: true}}", "", "tuning.lora.r: expected an integer, got True"),
    ("task: {type: pretrain, mask_prob: .inf}\nmodel: {arch: encoder}", "", "task.mask_prob: expected a finite"),
    ("task: {type: translation, max_new_tokens: \"64\"}", "", "task.max_new_tokens: expected an integer"),
    ("model: {name: 123}", "quote the value", "model.name: expected a string, got 123"),
])
def test_values_are_taken_as_written(tmp_path, section, value, expect):
    msg = error(tmp_path, MINIMAL + section + "\n")
    assert expect in msg
    assert value in msg


def test_yaml_1_2_exponent_floats_are_numbers(tmp_path):
    spec = load_spec(write(tmp_path, MINIMAL + "train: {lr: 1e-4, weight_decay: 1E-2}\n"))
    assert spec.train.lr == 1e-4 and spec.train.weight_decay == 0.01
    assert load_spec(write(tmp_path, MINIMAL), ["train.lr=2e-5"]).train.lr == 2e-5


def test_seed_range_edges_are_accepted(tmp_path):
    assert load_spec(write(tmp_path, MINIMAL + "seed: 0\n")).seed == 0
    assert load_spec(write(tmp_path, MINIMAL + "seed: 4294967295\n")).seed == 2**32 - 1


def test_a_saved_spec_loads_back_identically(tmp_path):
    spec = load_spec(write(tmp_path, MINIMAL + "train: {lr: 1e-5, threads: 2}\ntuning: {method: lora}\n"))
    save_spec(spec, tmp_path / "saved.yaml")
    assert load_spec(tmp_path / "saved.yaml") == spec


def test_plugin_options_inherit_the_strict_base():
    from lmkernel.tasks import TaskOptions
    from lmkernel.tuning import Options

    class MyOptions(Options):
        rank: int = 4
        scale: float = 1.0

    class MyTask(TaskOptions):
        type: str = "mine"
        width: int = 8

    for bad in ({"rank": True}, {"rank": "4"}, {"scale": float("inf")}, {"rank": 2**70}):
        with pytest.raises(ValidationError):
            MyOptions(**bad)
    with pytest.raises(ValidationError):
        MyTask(width=8.0)


def test_recursive_alias_is_refused(tmp_path):
    msg = error(tmp_path, "a: &a {x: *a}\n" + MINIMAL)
    assert "recursive alias" in msg and "line 1" in msg


def test_alias_bomb_is_refused_before_anything_expands_it(tmp_path):
    levels = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 7):
        levels.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    msg = error(tmp_path, "\n".join(levels) + "\ndata: {train: *a6}\n")
    assert "once aliases are expanded" in msg
    assert len(msg) < 1000


def test_deep_nesting_is_refused(tmp_path):
    msg = error(tmp_path, MINIMAL + "x: " + "[" * 3000 + "]" * 3000 + "\n")
    assert "nested more than" in msg
    block = MINIMAL + "".join("  " * i + f"k{i}:\n" for i in range(40))
    assert "nested more than" in error(tmp_path, block)


def test_huge_integer_is_refused(tmp_path):
    assert "an integer of 5000 characters" in error(tmp_path, MINIMAL + "seed: " + "9" * 5000 + "\n")
    assert "--set seed" in error(tmp_path, MINIMAL, ["seed=" + "9" * 5000])


def test_oversized_or_unreadable_spec_is_refused(tmp_path):
    assert "a spec is a few KB" in error(tmp_path, MINIMAL + "# " + "x" * 300_000 + "\n")
    folder = tmp_path / "folder.yaml"
    folder.mkdir()
    with pytest.raises(LmkError, match="cannot read the spec"):
        load_spec(folder)


def test_messages_never_print_huge_values(tmp_path):
    msg = error(tmp_path, MINIMAL + "model: {name: [" + ", ".join(["abcdefgh" * 10] * 2000) + "]}\n")
    assert "model.name" in msg and len(msg) < 1000
    msg = error(tmp_path, MINIMAL + "tuning: {method: " + "z" * 100_000 + "}\n")
    assert "unknown tuning method" in msg and len(msg) < 1000


def test_thousands_of_errors_are_summarised(tmp_path):
    with pytest.raises(SpecErrors) as e:
        load_spec(write(tmp_path, MINIMAL + "tokenizer: {special_tokens: [" + ", ".join(["1"] * 500) + "]}\n"))
    assert len(e.value.errors) == 500
    assert "... and 480 more" in str(e.value) and len(str(e.value)) < 10_000


@pytest.mark.parametrize("value", ["!!int abc", "!!timestamp 1e5", "!!float x", "!!bool maybe"])
def test_value_its_explicit_tag_cannot_hold_is_a_yaml_error(tmp_path, value):
    assert "spec is not valid YAML: cannot read" in error(tmp_path, MINIMAL + f"train: {{epochs: {value}}}\n")


def test_nul_in_a_path_or_model_name_is_refused(tmp_path):
    msg = error(tmp_path, 'data: {train: "a\\0b"}\nmodel: {name: "./m\\0"}\n')
    assert "data.train: a path cannot contain a NUL character" in msg
    assert "model.name: a model name or path cannot contain a NUL character" in msg
    assert "NUL" in error(tmp_path, MINIMAL, ["output.dir=/tmp/x\x00y"])
