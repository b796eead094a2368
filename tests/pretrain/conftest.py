"""Fixtures for the pretraining tests (helpers live in pretrain_helpers.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pretrain_helpers import corpus_lines


@pytest.fixture()
def corpus(tmp_path) -> Path:
    d = tmp_path / "corpus"
    d.mkdir()
    (d / "train.txt").write_text("\n".join(corpus_lines(400, 1)) + "\n", encoding="utf-8")
    (d / "valid.txt").write_text("\n".join(corpus_lines(60, 2)) + "\n", encoding="utf-8")
    return d
