"""Small chat and translation data for the causal-LM tests (the model is ``tiny_llama``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from lm_helpers import PAIRS, chat_rows, write_jsonl


@pytest.fixture()
def chat_data(tmp_path) -> Path:
    d = tmp_path / "data"
    write_jsonl(d / "train.jsonl", chat_rows(24))
    write_jsonl(d / "dev.jsonl", chat_rows(6))
    return d


@pytest.fixture()
def aligned_data(tmp_path) -> Path:
    d = tmp_path / "mt"
    d.mkdir()
    for split, n in (("train", 16), ("val", 4)):
        (d / f"{split}.en").write_text("".join(PAIRS[i % 4][0] + "\n" for i in range(n)), encoding="utf-8")
        (d / f"{split}.de").write_text("".join(PAIRS[i % 4][1] + "\n" for i in range(n)), encoding="utf-8")
    return d
