"""One tiny trained run and its compressed copies, built once per session and shared."""

from __future__ import annotations

from pathlib import Path

import pytest
from datakit import make_rows, write_csv

MAX_EXAMPLES = 40  # measurement bounds that keep each compress call around a second
LATENCY_SAMPLES = 5


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory, tiny_bert) -> Path:
    """A full fine-tune of the tiny BERT on the synthetic sentiment rows (fp32, 3 epochs)."""
    import lmkernel
    from lmkernel.spec import parse_spec

    root = tmp_path_factory.mktemp("compress")
    write_csv(root / "train.csv", make_rows(160, seed=1))
    write_csv(root / "dev.csv", make_rows(40, seed=2))
    spec = parse_spec({"data": {"train": str(root / "train.csv"), "validation": str(root / "dev.csv")},
                       "model": {"name": str(tiny_bert)}, "tuning": {"method": "full"},
                       "train": {"epochs": 3, "batch_size": 16, "lr": 3e-3, "precision": "fp32"},
                       "output": {"dir": str(root / "runs" / "tiny")}})
    return lmkernel.run(spec, progress=False).run_dir


def compress(run: Path, method: str, out: Path, **kwargs):
    from lmkernel.compress.workflow import compress as run_compress

    return run_compress(run, method, out, max_examples=MAX_EXAMPLES, latency_samples=LATENCY_SAMPLES, **kwargs)


@pytest.fixture(scope="session")
def compressor():
    """``compress(run, method, out, **options)`` with the small measurement bounds."""
    return compress


@pytest.fixture(scope="session")
def int8_result(trained_run):
    return compress(trained_run, "int8", trained_run.parent / "tiny-int8")


@pytest.fixture(scope="session")
def onnx_result(trained_run):
    return compress(trained_run, "onnx", trained_run.parent / "tiny-onnx")


@pytest.fixture(scope="session")
def onnx_int8_result(trained_run, onnx_result):
    """The full ``--method onnx --quantize int8`` path, reusing the fp32 export (export costs ~5 s)."""
    import shutil

    from lmkernel.compress import onnx

    def copy_export(model, path):
        shutil.copy(onnx_result.out_dir / "model" / onnx.ONNX_FILE, path)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(onnx, "export", copy_export)
        return compress(trained_run, "onnx", trained_run.parent / "tiny-onnx-int8", quantize="int8")


@pytest.fixture(scope="session")
def prune_result(trained_run):
    return compress(trained_run, "prune", trained_run.parent / "tiny-prune", sparsity=0.5, structured="heads,ffn")


@pytest.fixture(scope="session")
def dev_texts(trained_run) -> list[str]:
    return [text for text, _ in make_rows(40, seed=2)] + ["the film was great", "房间太差", "a b c unknown"]
