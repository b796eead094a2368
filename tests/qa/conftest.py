"""QA fixtures: data files in both layouts and a tiny qa run trained once per session."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "serve"))  # serve_helpers, for the /v1/qa tests

from qa_helpers import qa_rows, write_jsonl, write_squad  # noqa: E402  (tests/qa is on sys.path)


@pytest.fixture()
def qa_data(tmp_path) -> dict[str, Path]:
    return {"train": write_jsonl(tmp_path / "data" / "train.jsonl", qa_rows(48)),
            "dev": write_squad(tmp_path / "data" / "dev.json", qa_rows(12))}


@pytest.fixture(scope="session")
def qa_run(tiny_bert, tmp_path_factory) -> Path:
    """A qa run on the tiny BERT that has learned the data above (trained once per session)."""
    import lmkernel

    root = tmp_path_factory.mktemp("qa-run")
    train = write_jsonl(root / "data" / "train.jsonl", qa_rows(48))
    dev = write_squad(root / "data" / "dev.json", qa_rows(12))
    spec = root / "spec.yaml"
    spec.write_text(f"""task: {{type: qa}}
data: {{train: {train}, validation: {dev}, max_length: 32}}
model: {{name: {tiny_bert}}}
tuning: {{method: full}}
train: {{epochs: 6, batch_size: 8, lr: 5e-3, log_every: 4}}
output: {{dir: {root / 'run'}}}
""", encoding="utf-8")
    return lmkernel.run(spec, progress=False).run_dir
