"""`lmkernel serve --runtime onnx|onnx-int8`: an ONNX Runtime copy built once under the run folder,
rebuilt when the weights change, refused where it cannot serve; and a real server on it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

import httpx
import pytest
from serve_helpers import wait_process_ready
from test_server import free_port, runner, server_env

from lmkernel.artifact import load, read_card
from lmkernel.cli import app
from lmkernel.errors import LmkError
from lmkernel.serve.runtime import check_runtime, runtime_model_dir
from lmkernel.serve.settings import ServeSettings

TEXTS = ["the film was great", "a dull and boring plot", "great acting", "awful"]


@pytest.fixture()
def run(tiny_run, tmp_path):
    """A private copy: the copies are written under the run folder."""
    return shutil.copytree(tiny_run, tmp_path / "run")


def test_torch_serves_the_artifact_itself(run):
    assert runtime_model_dir(run / "model", "torch") == run / "model"


@pytest.mark.parametrize("runtime", ["onnx", "onnx-int8"])
def test_onnx_copy_is_built_once_and_predicts_like_the_original(run, runtime):
    served = runtime_model_dir(run / "model", runtime)
    assert served == run / "serving" / runtime / "model"
    assert read_card(served)["weights"] == "onnx"
    original, copy = load(run / "model", backend="exact"), load(served, backend="exact")
    want, got = original.predict(TEXTS), copy.predict(TEXTS)
    if runtime == "onnx":  # the same fp32 weights: the same labels and probabilities
        assert [p["label"] for p in got] == [p["label"] for p in want]
        for a, b in zip(want, got):
            for label, prob in a["probabilities"].items():
                assert b["probabilities"][label] == pytest.approx(prob, abs=1e-4)
    stamp = (run / "serving" / runtime / "model").stat().st_mtime_ns
    assert runtime_model_dir(run / "model", runtime) == served  # reused: not rebuilt
    assert (run / "serving" / runtime / "model").stat().st_mtime_ns == stamp


def test_copy_is_rebuilt_when_the_weights_change(run):
    served = runtime_model_dir(run / "model", "onnx")
    before = json.loads((run / "serving" / "onnx" / "source.json").read_text())["fingerprint"]
    weights = next((run / "model").glob("*.safetensors"))
    os.utime(weights, (time.time() + 100, time.time() + 100))  # "retrained in place"
    assert runtime_model_dir(run / "model", "onnx") == served
    after = json.loads((run / "serving" / "onnx" / "source.json").read_text())["fingerprint"]
    assert after != before


@pytest.mark.parametrize("runtime,card,precision,message", [
    ("tensorrt", {"task": "classification", "weights": "full"}, "fp32", "--runtime 'tensorrt' is not known"),
    ("onnx", {"task": "classification", "weights": "full"}, "bf16", "--precision bf16 is a PyTorch autocast"),
    ("onnx", {"task": "ner", "weights": "full"}, "fp32", "serves classification artifacts"),
    ("onnx-int8", {"task": "classification", "weights": "int8"}, "fp32", "already compressed"),
])
def test_runtime_refused_where_it_cannot_serve(tmp_path, runtime, card, precision, message):
    with pytest.raises(LmkError, match=message) as err:
        check_runtime(runtime, tmp_path, card, precision)
    assert err.value.where in ("--runtime", "--precision")


def test_settings_and_cli_refuse_an_unknown_runtime(tiny_run):
    with pytest.raises(LmkError, match="--runtime 'fast' is not known"):
        ServeSettings(runtime="fast")
    result = runner.invoke(app, ["serve", str(tiny_run), "--runtime", "fast"])
    assert result.exit_code == 2 and "--runtime 'fast' is not known" in result.output, result.output


def test_unwritable_run_folder_says_how_to_build_the_copy_elsewhere(run):
    (run / "serving").write_text("not a folder")  # mkdir under it fails like a read-only run folder
    with pytest.raises(LmkError, match="cannot write the onnx copy") as err:
        runtime_model_dir(run / "model", "onnx")
    assert "lmkernel compress" in err.value.fix


def test_cli_serves_the_onnx_copy(run):
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "lmkernel.cli", "serve", str(run), "--port", str(port),
                             "--runtime", "onnx", "--threads", "1"],
                            env=server_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            wait_process_ready(client, proc, timeout=90)
            reply = client.post("/v1/classify", json={"texts": TEXTS})
        assert reply.status_code == 200
        want = [p["label"] for p in load(run / "model", backend="exact").predict(TEXTS)]
        assert [r["label"] for r in reply.json()["results"]] == want
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    assert "building the onnx copy" in out and (run / "serving" / "onnx" / "model").is_dir(), out
