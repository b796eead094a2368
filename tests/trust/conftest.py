"""Trust fixtures: one tiny classification run trained per session (it carries a trust profile)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import make_rows, write_csv


@pytest.fixture(scope="session")
def trained_run(tiny_bert, tmp_path_factory) -> Path:
    """The tiny BERT fine-tuned on the English/Chinese sentiment rows, with validation and test splits."""
    import lmkernel
    from lmkernel.spec import parse_spec

    root = tmp_path_factory.mktemp("trust-run")
    write_csv(root / "train.csv", make_rows(160, seed=1))
    write_csv(root / "dev.csv", make_rows(60, seed=2))
    write_csv(root / "test.csv", make_rows(40, seed=3))
    spec = parse_spec({"data": {"train": str(root / "train.csv"), "validation": str(root / "dev.csv"),
                                "test": str(root / "test.csv"), "max_length": 32},
                       "model": {"name": str(tiny_bert)}, "tuning": {"method": "full"},
                       "train": {"epochs": 3, "batch_size": 16, "lr": 3e-3},
                       "output": {"dir": str(root / "run")}})
    return lmkernel.run(spec, progress=False).run_dir
