"""The pretraining parts of the spec: model.arch vs model.name, tokenizer section, examples load."""

from __future__ import annotations

from pathlib import Path

import pytest

from lmkernel.errors import LmkError
from lmkernel.pretrain.corpus import resolve_files
from lmkernel.spec import load_spec, parse_spec

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _spec(**parts):
    return parse_spec({"data": {"train": "corpus.txt"}, **parts})


def test_arch_replaces_name_and_keeps_classification_defaults():
    s = _spec(task={"type": "pretrain", "objective": "mlm"}, model={"arch": "encoder"}, tokenizer={"vocab_size": 500})
    assert s.model.name is None and s.model.preset == "tiny" and s.tokenizer.vocab_size == 500
    assert s.train.metric == "loss" and s.tuning.method == "full"
    plain = _spec()
    assert plain.model.name == "minilm" and plain.model.arch is None and plain.task.type == "classification"


@pytest.mark.parametrize("parts,message", [
    ({"model": {"arch": "encoder"}}, "task 'classification' needs a trained one"),
    ({"task": {"type": "pretrain", "objective": "clm"}, "model": {"arch": "encoder"}}, "objective mlm"),
    ({"task": {"type": "pretrain"}, "model": {"arch": "decoder", "name": "minilm"}}, "not both"),
    ({"task": {"type": "pretrain"}, "model": {"arch": "decoder", "preset": "huge"}}, "model.preset"),
    ({"task": {"type": "pretrain"}, "tokenizer": {"vocab_sise": 10}}, "did you mean tokenizer.vocab_size"),
])
def test_bad_pretrain_specs_name_the_key(parts, message):
    with pytest.raises(LmkError) as e:
        _spec(**parts)
    assert message in e.value.render()


def test_example_spec_loads_and_its_corpus_exists():
    spec = load_spec(EXAMPLES / "pretrain.yaml")
    assert spec.task.type == "pretrain"
    assert len(resolve_files(spec.data.train, "data.train")) == 2  # the glob finds the English and Chinese files
