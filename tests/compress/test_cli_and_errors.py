"""`lmkernel compress` / `compare` from the command line, the registry, and every user error."""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

from lmkernel.cli import app
from lmkernel.errors import LmkError

runner = CliRunner()
BOUNDS = ["--max-examples", "20", "--latency-samples", "3"]


def cli(*args: str, code: int = 0):
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, result.output
    return result


def test_compress_cli_writes_a_new_run_and_never_overwrites(trained_run, tmp_path):
    out = cli("compress", str(trained_run), "--method", "int8", "--out", str(tmp_path / "q"), "-q", *BOUNDS)
    assert "| tiny |" in out.output and "| q |" in out.output and "compression.md" in out.output
    assert (tmp_path / "q" / "model" / "lmkernel.json").exists()
    cli("compress", str(trained_run), "-m", "int8", "-o", str(tmp_path / "q"), "-q", *BOUNDS)
    assert (tmp_path / "q-2" / "compression.json").exists() and (tmp_path / "q" / "model").exists()
    preds = cli("predict", str(tmp_path / "q"), "the film was great", "--json").output
    assert json.loads(preds.splitlines()[0])["label"] in ("positive", "negative")


def test_compare_prints_table_and_writes_plot(trained_run, int8_result, onnx_result, tmp_path):
    runs = [str(trained_run), str(int8_result.out_dir), str(onnx_result.out_dir)]
    try:
        out = cli("compare", *runs, "--out", str(tmp_path / "cmp"), "-q", *BOUNDS)
        assert not (trained_run / "backends.json").exists()  # measuring changes nothing the run serves
        assert "--select makes" in out.output or "fastest within" in out.output
        selected = cli("compare", *runs, "--out", str(tmp_path / "cmp2"), "--select", "-q", *BOUNDS)
        card = json.loads(cli("inspect", str(trained_run)).output)
        if (trained_run / "backends.json").is_file():  # a copy won: said by compare, shown by inspect
            assert "now serves" in selected.output
            assert card["served_backend"]["selected_by"] == "lmkernel compare --select"
            assert "note: predicting with" in cli("predict", str(trained_run), "good").stderr
        else:
            assert "serves itself" in selected.output and "served_backend" not in card
    finally:
        (trained_run / "backends.json").unlink(missing_ok=True)  # other tests load the original
    for name in ("| tiny |", "| tiny-int8 |", "| tiny-onnx |"):
        assert name in out.output
    assert (tmp_path / "cmp" / "compare.png").read_bytes()[:4] == b"\x89PNG"
    info = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert [a["weights"] for a in info["artifacts"]] == ["full", "int8", "onnx"]
    assert info["examples"] == 20 and info["data"]["file"].endswith("dev.csv")


def test_compare_reads_data_recorded_by_a_compressed_run(int8_result, tmp_path):
    from lmkernel.compress.compare import compare

    result = compare([int8_result.out_dir], out=tmp_path / "c", max_examples=10, latency_samples=2)
    assert result.rows[0].weights == "int8" and (tmp_path / "c" / "compare.md").exists()


@pytest.mark.parametrize("args,message", [
    (["--method", "int9"], "unknown compression method 'int9'. Did you mean 'int8'?"),
    (["--method", "zzz"], "use one of: distill, int8, onnx, prune"),
    (["--method", "int8", "--quantize", "int8"], "--quantize does not apply to --method int8"),
    (["--method", "onnx", "--quantize", "int4"], "--quantize 'int4' is not supported by --method onnx"),
    (["--method", "int8", "--sparsity", "0.4"], "--sparsity does not apply to --method int8"),
    (["--method", "prune"], "--method prune needs --sparsity"),
    (["--method", "prune", "--sparsity", "1.5"], "--sparsity 1.5 is outside (0, 1)"),
    (["--method", "prune", "--sparsity", "0"], "--sparsity 0.0 is outside (0, 1)"),
    (["--method", "prune", "--sparsity", "0.4", "--finetune", "-1"], "--finetune -1 is negative"),
])
def test_bad_method_options_are_clear_errors(trained_run, tmp_path, args, message):
    out = cli("compress", str(trained_run), *args, "--out", str(tmp_path / "x"), code=2)
    assert message in out.output and "Traceback" not in out.output
    assert not (tmp_path / "x").exists()  # rejected before anything was written


def test_missing_run_and_already_compressed_run(int8_result, tmp_path):
    assert "no such run" in cli("compress", str(tmp_path / "nope"), "-m", "int8", code=2).output
    assert "no such run" in cli("compare", str(tmp_path / "nope"), code=2).output
    out = cli("compress", str(int8_result.out_dir), "-m", "onnx", "-o", str(tmp_path / "y"), code=2).output
    assert "already compressed (weights: int8)" in out


def test_unsupported_task_and_missing_data(trained_run, tmp_path):
    copy = tmp_path / "lonely"
    shutil.copytree(trained_run / "model", copy / "model")  # a model folder without spec.yaml
    out = cli("compress", str(copy), "-m", "int8", "-o", str(tmp_path / "z"), code=2).output
    assert "no validation data recorded" in out and "--data" in out
    card = json.loads((copy / "model" / "lmkernel.json").read_text())
    (copy / "model" / "lmkernel.json").write_text(json.dumps({**card, "task": "summarization"}))
    out = cli("compress", str(copy), "-m", "int8", "--data", str(tmp_path / "any.csv"), code=2).output
    assert "--method int8 does not support 'summarization' artifacts" in out and "it handles: classification" in out


def test_int8_rejects_unsupported_layer_types():
    import torch
    from transformers.pytorch_utils import Conv1D

    from lmkernel.compress.int8 import quantize_model

    model = torch.nn.Sequential(torch.nn.Linear(4, 4), Conv1D(4, 4), torch.nn.Conv1d(4, 4, 3))
    with pytest.raises(LmkError, match="does not support the layer type.*Conv1D.*Conv1d") as e:
        quantize_model(model)
    assert "--method onnx" in e.value.fix


def test_registry_rejects_duplicates_and_bad_names():
    from lmkernel.compress import Method, method_names, register

    assert {"int8", "onnx", "prune"} <= set(method_names())
    twin = Method(name="int8", summary="", build="x:y", load="x:y", weights="other", tasks=("classification",))
    with pytest.raises(ValueError, match="already registered"):
        register(twin)
    with pytest.raises(ValueError, match="lower-case"):
        register(Method(name="Int-4", summary="", build="x:y", load="x:y", weights="int4", tasks=()))
    with pytest.raises(ValueError, match="weight kind 'int8'"):
        register(Method(name="int8b", summary="", build="x:y", load="x:y", weights="int8", tasks=()))


def test_measurement_bounds_must_be_positive(trained_run, tmp_path):
    out = cli("compress", str(trained_run), "-m", "int8", "--max-examples", "0", "-o", str(tmp_path / "b"), code=2)
    assert "--max-examples" in out.output and not (tmp_path / "b").exists()


def test_prune_rejects_other_architectures():
    import torch

    from lmkernel.compress.prune import encoder_layers

    with pytest.raises(LmkError, match="prune does not support Sequential") as e:
        encoder_layers(torch.nn.Sequential(torch.nn.Linear(4, 4)))
    assert "BERT-style" in e.value.fix


def test_method_options_are_typed_by_their_model_and_their_help_comes_from_it():
    from lmkernel.compress import check_options, get_method, option_flags
    from lmkernel.errors import LmkError

    with pytest.raises(LmkError, match="--sparsity 'lots'"):
        check_options(get_method("prune"), {"sparsity": "lots"})
    with pytest.raises(LmkError, match="--layers does not apply to --method prune"):
        check_options(get_method("prune"), {"sparsity": 0.4, "layers": 2})
    helps = {name: text for name, _, text in option_flags()}
    assert helps["finetune"].startswith("prune: ") and "; distill: " in helps["finetune"]  # one flag, two meanings
