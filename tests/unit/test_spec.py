from pathlib import Path

import pytest

from lmkernel.errors import LmkError, SpecErrors
from lmkernel.spec import describe_fields, load_spec

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def write(tmp_path, text: str) -> Path:
    p = tmp_path / "s.yaml"
    p.write_text(text, encoding="utf-8")
    return p


MINIMAL = "data: {train: d/train.csv}\n"


def test_minimal_spec_gets_documented_defaults(tmp_path):
    spec = load_spec(write(tmp_path, MINIMAL))
    assert spec.task.type == "classification"
    assert spec.model.name == "minilm"
    assert spec.train.lr == 1e-4  # full fine-tuning default
    assert spec.data.train == (tmp_path / "d/train.csv").resolve()  # relative to the spec file


def test_lr_default_follows_tuning_method(tmp_path):
    spec = load_spec(write(tmp_path, MINIMAL), ["tuning.method=lora"])
    assert spec.train.lr == 1e-3
    spec = load_spec(write(tmp_path, MINIMAL), ["tuning.method=lora", "train.lr=1e-4"])
    assert spec.train.lr == 1e-4


def test_unknown_key_names_path_line_and_closest(tmp_path):
    p = write(tmp_path, "data: {train: x.csv}\ntrain:\n  epoch: 2\n")
    with pytest.raises(LmkError) as e:
        load_spec(p)
    msg = str(e.value)
    assert "train.epoch: unknown key" in msg
    assert "did you mean train.epochs?" in msg
    assert "line 3" in msg


def test_wrong_type_names_field_and_expected_type(tmp_path):
    with pytest.raises(LmkError) as e:
        load_spec(write(tmp_path, MINIMAL + "train: {epochs: two}\n"))
    assert "train.epochs: expected an integer, got 'two'" in str(e.value)


def test_all_errors_reported_at_once(tmp_path):
    with pytest.raises(SpecErrors) as e:
        load_spec(write(tmp_path, MINIMAL + "train: {epochs: two, batch_sise: 3}\nmodell: {}\n"))
    assert len(e.value.errors) == 3
    text = str(e.value)
    assert "did you mean train.batch_size?" in text and "did you mean model?" in text


def test_set_overrides_any_field_and_types_values(tmp_path):
    spec = load_spec(write(tmp_path, MINIMAL), ["train.epochs=1", "tuning.lora.r=4", "data.on_bad_rows=skip",
                                                "train.grad_clip=null"])
    assert spec.train.epochs == 1 and spec.tuning.lora.r == 4
    assert spec.data.on_bad_rows == "skip" and spec.train.grad_clip is None


def test_set_unknown_key_is_rejected(tmp_path):
    with pytest.raises(LmkError, match="did you mean train.epochs"):
        load_spec(write(tmp_path, MINIMAL), ["train.epochz=1"])
    with pytest.raises(LmkError, match="expected key=value"):
        load_spec(write(tmp_path, MINIMAL), ["train.epochs"])


def test_unknown_task_and_method_suggest(tmp_path):
    with pytest.raises(LmkError, match="did you mean 'classification'"):
        load_spec(write(tmp_path, MINIMAL + "task: {type: clasification}\n"))
    with pytest.raises(LmkError, match="did you mean 'lora'"):
        load_spec(write(tmp_path, MINIMAL + "tuning: {method: lor}\n"))


def test_split_conflicts_and_ranges(tmp_path):
    with pytest.raises(LmkError, match="not both"):
        load_spec(write(tmp_path, "data: {train: a.csv, validation: b.csv, split: {validation: 0.1}}\n"))
    with pytest.raises(LmkError, match="data.split.validation"):
        load_spec(write(tmp_path, "data: {train: a.csv, split: {validation: 1.5}}\n"))


def test_missing_required_and_bad_yaml(tmp_path):
    with pytest.raises(LmkError, match="data: required key is missing"):
        load_spec(write(tmp_path, "task: {type: classification}\n"))
    with pytest.raises(LmkError, match="not valid YAML"):
        load_spec(write(tmp_path, "data: {train: [\n"))
    with pytest.raises(LmkError, match="spec file not found"):
        load_spec(tmp_path / "nope.yaml")


def test_default_output_dir_is_runs_spec_name_in_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = load_spec(write(tmp_path, MINIMAL))
    assert spec.output.dir == (tmp_path / "runs" / "s").resolve()


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_every_example_spec_validates(path):
    spec = load_spec(path)
    assert spec.data.train.is_absolute()


def test_every_field_is_documented():
    rows = describe_fields()
    keys = [k for k, _, _ in rows]
    assert "train.epochs" in keys and "tuning.lora.r" in keys
    undocumented = [k for k, _, d in rows if not d and k not in ("train.weight_decay",)]
    assert not undocumented, undocumented
