"""Every compression method on the tiny model: a loadable artifact, close outputs, a smaller file."""

from __future__ import annotations

import json

import pytest
import torch

import lmkernel

# Stated tolerances (max absolute difference of class probabilities against the fp32 torch model).
ONNX_FP32_ATOL = 1e-5  # same graph, different kernels: float rounding only
INT8_ATOL = 0.05  # int8 weights and activations: small, bounded drift
INT8_SAME_ARGMAX = 0.9  # share of texts whose predicted label must not change


def probabilities(run, texts) -> torch.Tensor:
    model = lmkernel.load(run)
    return torch.tensor([[p["probabilities"][lab] for lab in model.labels] for p in model.predict(texts)])


def check_close(reference, other, atol: float, same_argmax: float) -> None:
    diff = (reference - other).abs().max().item()
    agree = (reference.argmax(-1) == other.argmax(-1)).float().mean().item()
    assert diff <= atol, f"max probability difference {diff:.2e} > {atol}"
    assert agree >= same_argmax, f"only {agree:.0%} same labels"


def test_int8_artifact_is_int8_safetensors_and_small(trained_run, int8_result):
    from safetensors import safe_open

    model_dir = int8_result.out_dir / "model"
    card = json.loads((model_dir / "lmkernel.json").read_text())
    assert card["weights"] == "int8" and card["compression"]["method"] == "int8"
    assert card["labels"] == ["negative", "positive"]
    with safe_open(model_dir / "model.safetensors", "pt") as f:
        dtypes = {k: f.get_slice(k).get_dtype() for k in f.keys()}
    assert dtypes["bert.embeddings.word_embeddings.weight"] == "I8"
    assert dtypes["bert.encoder.layer.0.attention.self.query.weight"] == "I8"
    assert dtypes["bert.encoder.layer.0.attention.self.query.weight_scale"] == "F32"
    fp32_bytes = (trained_run / "model" / "model.safetensors").stat().st_size
    assert (model_dir / "model.safetensors").stat().st_size <= 0.35 * fp32_bytes
    assert int8_result.result.size_bytes < int8_result.original.size_bytes


def test_int8_loads_as_quantized_and_predicts_close(trained_run, int8_result, dev_texts):
    import torch.ao.nn.quantized.dynamic as nnqd

    model = lmkernel.load(int8_result.out_dir)
    assert sum(isinstance(m, nnqd.Linear) for m in model.model.modules()) >= 12  # 2 layers x 6 + pooler + head
    assert not any(type(m) is torch.nn.Linear for m in model.model.modules())
    check_close(probabilities(trained_run, dev_texts), probabilities(int8_result.out_dir, dev_texts),
                INT8_ATOL, INT8_SAME_ARGMAX)


def test_int8_reload_holds_exactly_the_quantized_weights(trained_run, int8_result):
    from lmkernel.compress.int8 import quantize_model

    fresh = quantize_model(lmkernel.load(trained_run).model).bert.encoder.layer[0].attention.self.query.weight()
    loaded = lmkernel.load(int8_result.out_dir).model.bert.encoder.layer[0].attention.self.query.weight()
    assert torch.equal(fresh.int_repr(), loaded.int_repr())
    assert torch.equal(fresh.q_per_channel_scales(), loaded.q_per_channel_scales())
    assert not loaded.q_per_channel_zero_points().any()


def test_quantize_rows_error_is_within_half_a_step():
    from lmkernel.compress.int8 import quantize_rows

    w = torch.randn(50, 16)
    values, scale = quantize_rows(w)
    assert values.dtype == torch.int8 and scale.shape == (50,)
    assert ((values.float() * scale[:, None] - w).abs() <= scale[:, None] / 2 + 1e-7).all()


def test_onnx_fp32_matches_pytorch(trained_run, onnx_result, dev_texts):
    model_dir = onnx_result.out_dir / "model"
    card = json.loads((model_dir / "lmkernel.json").read_text())
    assert card["weights"] == "onnx" and card["onnx"]["quantize"] is None
    assert (model_dir / "model.onnx").is_file() and not (model_dir / "model.safetensors").exists()
    check_close(probabilities(trained_run, dev_texts), probabilities(onnx_result.out_dir, dev_texts),
                ONNX_FP32_ATOL, 1.0)


def test_onnx_handles_any_batch_and_length(onnx_result):
    model = lmkernel.load(onnx_result.out_dir)
    for batch, length in ((1, 1), (3, 17), (5, 60)):
        ids = torch.randint(5, 50, (batch, length))
        assert model.model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits.shape == (batch, 2)


def test_onnx_int8_is_smaller_and_close(trained_run, onnx_result, onnx_int8_result, dev_texts):
    fp32_bytes = (onnx_result.out_dir / "model" / "model.onnx").stat().st_size
    int8_bytes = (onnx_int8_result.out_dir / "model" / "model.onnx").stat().st_size
    assert int8_bytes <= 0.6 * fp32_bytes  # tiny matrices: scales and graph weigh more; MiniLM is ~0.26
    assert json.loads((onnx_int8_result.out_dir / "model" / "lmkernel.json").read_text())["onnx"]["quantize"] == "int8"
    check_close(probabilities(trained_run, dev_texts), probabilities(onnx_int8_result.out_dir, dev_texts),
                INT8_ATOL, INT8_SAME_ARGMAX)


@pytest.mark.parametrize("result,accuracy_tolerance", [("int8_result", 0.1), ("onnx_result", 0.0),
                                                       ("prune_result", 1.0)])  # half of a tiny model: anything
def test_compressed_artifacts_evaluate_like_any_other(result, accuracy_tolerance, request, trained_run, tmp_path):
    from lmkernel.pipeline import evaluate_run

    out = request.getfixturevalue(result).out_dir
    metrics = evaluate_run(out, trained_run.parent.parent / "dev.csv", tmp_path / "ev", progress=False)
    reference = evaluate_run(trained_run, trained_run.parent.parent / "dev.csv", tmp_path / "ref", progress=False)
    assert abs(metrics["accuracy"] - reference["accuracy"]) <= accuracy_tolerance
    if accuracy_tolerance < 1:
        assert metrics["loss"] == pytest.approx(reference["loss"], abs=0.1)
    assert (tmp_path / "ev" / "report.md").exists()


@pytest.mark.parametrize("result", ["int8_result", "onnx_result", "onnx_int8_result", "prune_result"])
def test_compression_report_compares_original_and_result(result, request, trained_run):
    r = request.getfixturevalue(result)
    info = json.loads((r.out_dir / "compression.json").read_text())
    assert info["source"] == str(trained_run) and info["result"] == str(r.out_dir)
    assert info["examples"] == 40 and info["data"]["file"].endswith("dev.csv")
    for side in ("original", "compressed"):
        m = info[side]
        assert m["size_bytes"] > 0 and m["params"] > 0 and m["latency_p50_ms"] > 0 and m["throughput"] > 0
        low, high = m["throughput_range"]  # a spread from several rounds, the overall figure inside it
        assert 0 < low <= m["throughput"] <= high
        p25, p75 = m["latency_quartiles_ms"]
        assert p25 <= m["latency_p50_ms"] <= p75
        assert 0 <= m["metrics"]["accuracy"] <= 1
    assert info["original"]["weights"] == "full"
    if "onnx_result" not in result:
        assert info["ratios"]["size"] < 1
    md = (r.out_dir / "compression.md").read_text()
    assert "| tiny |" in md and "examples/s (batch 32)" in md and "accuracy change" in md
    card = json.loads((r.out_dir / "model" / "lmkernel.json").read_text())
    assert card["metrics"]["validation"]["accuracy"] == info["compressed"]["metrics"]["accuracy"]


@pytest.mark.parametrize("result", ["int8_result", "onnx_int8_result", "prune_result"])
def test_server_predictor_runs_compressed_artifacts(result, request):
    from lmkernel.serve.predictor import ClassifierPredictor

    predictor = ClassifierPredictor(lmkernel.load(request.getfixturevalue(result).out_dir))
    out = predictor(predictor.encode(["the film was great", "房间太差"], truncate=True))
    assert [set(o["probabilities"]) for o in out] == [{"negative", "positive"}] * 2
    predictor.warm_up()  # a full-length batch: the ONNX graph takes any sequence length


def test_lora_adapter_run_with_split_validation(trained_run, tiny_bert, dev_texts, compressor):
    """An adapter artifact is merged before quantizing; a seeded validation split is re-drawn."""
    from lmkernel.spec import parse_spec

    root = trained_run.parent.parent
    spec = parse_spec({"data": {"train": str(root / "train.csv"), "split": {"validation": 0.25}},
                       "model": {"name": str(tiny_bert)}, "tuning": {"method": "lora"},
                       "train": {"epochs": 1, "batch_size": 16, "precision": "fp32"},
                       "output": {"dir": str(root / "runs" / "lora")}})
    run = lmkernel.run(spec, progress=False).run_dir
    assert json.loads((run / "model" / "lmkernel.json").read_text())["weights"] == "adapter"
    result = compressor(run, "int8", root / "runs" / "lora-int8")
    info = json.loads((result.out_dir / "compression.json").read_text())
    assert info["data"]["spec"] == str(run / "spec.yaml") and info["examples"] == 40  # 25% of 160
    assert info["original"]["weights"] == "adapter" and info["compressed"]["weights"] == "int8"
    assert info["ratios"]["size"] < 1  # the adapter's size includes the base model it cannot run without
    check_close(probabilities(run, dev_texts), probabilities(result.out_dir, dev_texts), INT8_ATOL, INT8_SAME_ARGMAX)


def test_prune_really_shrinks_heads_and_ffn(trained_run, prune_result, dev_texts):
    card = json.loads((prune_result.out_dir / "model" / "lmkernel.json").read_text())
    assert card["weights"] == "pruned" and card["compression"]["sparsity"] == 0.5
    assert card["pruning"]["heads_per_layer"] == [1, 1] and card["pruning"]["ffn_per_layer"] == [32, 32]
    layer = lmkernel.load(prune_result.out_dir).model.bert.encoder.layer[0]
    assert layer.attention.self.query.weight.shape == (16, 32)  # 1 head of 16 of the 2 remain
    assert layer.attention.output.dense.weight.shape == (32, 16)
    assert layer.intermediate.dense.weight.shape == (32, 32) and layer.output.dense.weight.shape == (32, 32)
    assert prune_result.result.params < prune_result.original.params == card["total_params"] + 2 * (
        3 * 16 * 32 + 3 * 16 + 32 * 16 + 2 * (32 * 32) + 32)  # removed: Q/K/V rows, out cols, FFN rows/cols
    probs = probabilities(prune_result.out_dir, dev_texts)
    assert torch.allclose(probs.sum(-1), torch.ones(len(dev_texts)))


def test_prune_keeps_the_most_important_heads(trained_run):
    """Removing the head Taylor ranks lowest must hurt the loss less than removing the top one."""
    import copy
    import csv

    from lmkernel.compress.prune import encoder_layers, importance, shrink_layer

    source = lmkernel.load(trained_run)
    with open(trained_run.parent.parent / "dev.csv", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    tok = source.tokenizer([r["text"] for r in rows], padding=True, return_tensors="pt")
    batch = {"input_ids": tok["input_ids"], "attention_mask": tok["attention_mask"],
             "labels": torch.tensor([source.labels.index(r["label"]) for r in rows])}
    model = copy.deepcopy(source.model)
    scores = importance(model, encoder_layers(model), [batch])
    losses = {}
    for which in ("low", "high"):
        pruned = copy.deepcopy(source.model).eval()
        for layer, (heads, neurons) in zip(encoder_layers(pruned), scores):
            keep = heads.argmax() if which == "low" else heads.argmin()
            shrink_layer(layer, keep.view(1), torch.arange(len(neurons)))
        with torch.no_grad():
            losses[which] = pruned(**batch).loss.item()
    assert losses["low"] <= losses["high"]


def test_prune_recovery_finetune_trains_the_pruned_model(trained_run, prune_result, compressor):
    result = compressor(trained_run, "prune", trained_run.parent / "tiny-prune-ft", sparsity=0.5, finetune=1,
                        structured="heads,ffn")
    card = json.loads((result.out_dir / "model" / "lmkernel.json").read_text())
    assert card["pruning"]["finetune_epochs"] == 1 and card["compression"]["finetune"] == 1
    before = lmkernel.load(prune_result.out_dir).model.classifier.weight
    after = lmkernel.load(result.out_dir).model.classifier.weight
    assert before.shape == after.shape and not torch.equal(before, after)
    assert not (result.out_dir / "tensorboard").exists()  # the recovery loop's files stay temporary


def test_int8_fused_qkv_gives_the_same_outputs_as_three_gemms(int8_result, dev_texts):
    from lmkernel.compress import int8

    fused = lmkernel.load(int8_result.out_dir)
    attn = fused.model.bert.encoder.layer[0].attention.self
    assert isinstance(attn.query, int8.QKVSlice) and attn.query.fused.out_features == 3 * attn.key.layer.out_features
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(int8, "FUSE_QKV", False)
        plain = lmkernel.load(int8_result.out_dir)
    batch = fused.tokenizer(dev_texts, padding=True, return_tensors="pt")
    with torch.inference_mode():
        assert torch.allclose(fused.model(**batch).logits, plain.model(**batch).logits, atol=1e-5)
        x, other = torch.randn(2, 3, attn.query.layer.in_features), torch.randn(2, 3, attn.query.layer.in_features)
        attn.query(x)
        assert torch.equal(attn.key(other), attn.key.layer(other))  # another input (cross-attention): own GEMM
        assert torch.allclose(attn.value(x), attn.value.layer(x), atol=1e-5)


def test_report_figures_carry_their_spread_and_few_digits():
    from lmkernel.compress.measure import Measurement
    from lmkernel.compress.report import sig, table

    assert [sig(x) for x in (0.012345, 12.3456, 1234.56, 99.96)] == ["0.0123", "12.3", "1230", "100"]
    rows = [Measurement("a", "a", "full", 1000, 10, 12.3456, 412.345, {"accuracy": 0.9},
                        (390.12, 430.98), (11.111, 13.999)),
            Measurement("b", "b", "int8", 500, 10, 6.0, 824.7, {"accuracy": 0.89})]
    text = table(rows, 32)
    assert "| 12.3 (11–14) | 412 (390–430) |" in text  # latency quartiles, throughput rounds
    assert "| 824.7 |" not in text and "| 825 |" in text  # no spread recorded: the figure alone, 3 digits
    assert "| 2 | 0.49 |" in text  # ratios to 2 significant figures


def test_compress_shows_progress_bars(trained_run, tmp_path, capsys):
    from lmkernel.compress.workflow import compress

    compress(trained_run, "int8", tmp_path / "q", max_examples=8, latency_samples=2, progress=True)
    err = capsys.readouterr().err
    assert "throughput" in err and "latency" in err
