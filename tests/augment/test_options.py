"""data.augment's options: Wei & Zou's defaults and clear errors for bad values."""

from __future__ import annotations

import pytest

from lmkernel.augment.options import AugmentOptions, eda_parameters
from lmkernel.errors import LmkError


def _load(tmp_path, spec_file, augment: str):
    from lmkernel.spec import load_spec

    text = spec_file.read_text(encoding="utf-8").replace("data: {", "data: {augment: " + augment + ", ")
    path = tmp_path / "aug.yaml"
    path.write_text(text, encoding="utf-8")
    return load_spec(path)


def test_auto_follows_wei_and_zou_table():
    opts = AugmentOptions()
    assert eda_parameters(opts, 100) == (0.05, 16)
    assert eda_parameters(opts, 1500) == (0.05, 8)
    assert eda_parameters(opts, 5000) == (0.1, 4)
    assert eda_parameters(opts, 50000) == (0.1, 4)
    assert eda_parameters(AugmentOptions(alpha=0.2, n_aug=2), 100) == (0.2, 2)


def test_spec_accepts_augment(tmp_path, spec_file):
    spec = _load(tmp_path, spec_file, "{ops: [swap, delete], alpha: 0.1, n_aug: 4}")
    assert spec.data.augment.ops == ["swap", "delete"] and spec.data.augment.guard is True


@pytest.mark.parametrize("augment, message", [
    ("{alpha: 0.9}", "alpha must be in (0, 0.5]"),
    ("{alpha: 0}", "alpha must be in (0, 0.5]"),
    ("{n_aug: 0}", "n_aug must be between 1 and 64"),
    ("{ops: [synonym, shout]}", "ops.1: Input should be 'synonym', 'insert', 'swap' or 'delete'"),
    ("{ops: []}", "ops"),
    ("{ops: [swap, swap]}", "lists an operation twice"),
    ("{alphas: 0.1}", "alphas"),
])
def test_bad_options_are_clear_errors(tmp_path, spec_file, augment, message):
    with pytest.raises(LmkError) as e:
        _load(tmp_path, spec_file, augment)
    assert message in str(e.value) and "augment" in str(e.value)
