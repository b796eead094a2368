"""Serving the fastest backend a comparison measured: recorded by compare --select only, honoured by load."""

from __future__ import annotations

import json
import os
from pathlib import Path

import lmkernel
from lmkernel.artifact import load
from lmkernel.compress import backend


def test_compare_records_the_fastest_backend_and_load_honours_it(trained_run, int8_result, onnx_result, tmp_path):
    from lmkernel.compress.compare import compare

    record = trained_run / backend.BACKENDS_FILE
    runs = [trained_run, int8_result.out_dir, onnx_result.out_dir]
    try:
        result = compare(runs, out=tmp_path / "c", max_examples=10, latency_samples=2)
        assert not record.exists()  # measuring alone never changes what a run serves
        assert len(result.backends) == 1 and str(trained_run.resolve()) in result.backends[0]
        result = compare(runs, out=tmp_path / "c", max_examples=10, latency_samples=2, select=True)
        if not record.exists():  # the original itself won: select records nothing
            assert "serves itself" in result.backends[0]
            info = {**backend.choose([load(r, backend="exact") for r in runs], result.rows)[0]}
            info.pop("run")
            record.write_text(json.dumps(info))
        info = json.loads(record.read_text())
        speeds = {c["path"]: c["throughput"] for c in info["candidates"]}
        assert set(speeds) == {str(p.resolve()) for p in (trained_run, int8_result.out_dir, onnx_result.out_dir)}
        assert [r.throughput for r in result.rows] == list(speeds.values())
        within = [c for c in info["candidates"] if c["accuracy"] >= info["candidates"][0]["accuracy"] - 0.01]
        assert info["fastest"] == max(within, key=lambda c: c["throughput"])["path"]
        assert lmkernel.load(trained_run).path.parent.resolve() == Path(info["fastest"])
        assert load(trained_run, backend="exact").card["weights"] == "full"

        info["fastest"] = str(onnx_result.out_dir.resolve())  # pretend ONNX won
        record.write_text(json.dumps(info))
        assert lmkernel.load(trained_run).card["weights"] == "onnx"
        preds = lmkernel.load(trained_run).predict(["the film was great"])
        assert preds[0]["label"] in ("positive", "negative")

        weights = trained_run / "model" / "model.safetensors"  # retrained in place: the record is stale
        st = weights.stat()
        os.utime(weights, (st.st_atime, st.st_mtime + 5))
        assert lmkernel.load(trained_run).card["weights"] == "full"
        os.utime(weights, (st.st_atime, st.st_mtime))
        assert lmkernel.load(trained_run).card["weights"] == "onnx"

        record.write_text("{not json")  # a damaged record never stops loading
        assert lmkernel.load(trained_run).card["weights"] == "full"
    finally:
        record.unlink(missing_ok=True)


def test_pruned_or_distilled_artifacts_are_never_backends(trained_run, prune_result, tmp_path):
    from lmkernel.compress.compare import compare

    compare([trained_run, prune_result.out_dir], out=tmp_path / "c", max_examples=10, latency_samples=2)
    assert not (trained_run / backend.BACKENDS_FILE).exists()
