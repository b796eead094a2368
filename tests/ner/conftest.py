"""Fixtures of the NER tests (helpers live in ner_data.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from ner_data import make_sentences, write_conll, write_jsonl


@pytest.fixture()
def ner_spec(tmp_path, tiny_bert) -> Path:
    """A complete NER spec on the tiny model (IOB1 train file, BIO validation, JSONL test)."""
    d = tmp_path / "data"
    write_conll(d / "train.conll", make_sentences(160, seed=1), iob1=True)
    write_conll(d / "dev.conll", make_sentences(40, seed=2))
    write_jsonl(d / "test.jsonl", make_sentences(40, seed=3))
    spec = tmp_path / "ner.yaml"
    spec.write_text(
        f"""task: {{type: ner}}
data: {{train: data/train.conll, validation: data/dev.conll, test: data/test.jsonl}}
model: {{name: {tiny_bert}}}
train: {{epochs: 4, batch_size: 16, lr: 5e-3, log_every: 2, precision: fp32}}
output: {{dir: runs/ner}}
""", encoding="utf-8")
    return spec
