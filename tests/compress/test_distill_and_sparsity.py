"""Distillation and global unstructured pruning on the tiny BERT: artifacts, layer counts, sparsity, errors."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

import lmkernel
from lmkernel.cli import app
from lmkernel.errors import LmkError

runner = CliRunner()


@pytest.fixture(scope="session")
def distill_result(trained_run, compressor):
    return compressor(trained_run, "distill", trained_run.parent / "tiny-distill", layers=1, finetune=2)


@pytest.fixture(scope="session")
def sparse_result(trained_run, compressor):
    return compressor(trained_run, "prune", trained_run.parent / "tiny-sparse", sparsity=0.4)


def test_distilled_student_has_the_requested_layers_and_loads(trained_run, distill_result, dev_texts):
    model_dir = distill_result.out_dir / "model"
    card = json.loads((model_dir / "lmkernel.json").read_text())
    assert card["weights"] == "distilled" and card["compression"]["layers"] == 1
    assert card["distillation"]["teacher_layers"] == 2 and card["distillation"]["kept_layers"] == [1]
    assert json.loads((model_dir / "config.json").read_text())["num_hidden_layers"] == 1
    student = lmkernel.load(distill_result.out_dir)
    assert len(student.model.bert.encoder.layer) == 1
    assert all(p["label"] in ("negative", "positive") for p in student.predict(dev_texts))
    assert distill_result.result.params < distill_result.original.params
    assert distill_result.result.metrics["accuracy"] >= 0.5  # the tiny teacher is ~0.9 on this data


def test_student_starts_from_the_teachers_layers():
    from transformers import BertConfig, BertForSequenceClassification

    from lmkernel.compress.distill import make_student, pick_layers

    assert pick_layers(12, 3) == [0, 6, 11] and pick_layers(6, 3) == [0, 2, 5] and pick_layers(4, 1) == [3]
    torch.manual_seed(0)
    teacher = BertForSequenceClassification(BertConfig(vocab_size=30, hidden_size=16, num_hidden_layers=4,
                                                       num_attention_heads=2, intermediate_size=32))
    student, kept = make_student(teacher, 2)
    assert kept == [0, 3] and student.config.num_hidden_layers == 2 and teacher.config.num_hidden_layers == 4
    for i, k in zip(range(2), kept):
        assert torch.equal(student.bert.encoder.layer[i].output.dense.weight,
                           teacher.bert.encoder.layer[k].output.dense.weight)
    assert torch.equal(student.classifier.weight, teacher.classifier.weight)
    assert student.classifier.weight.data_ptr() != teacher.classifier.weight.data_ptr()  # a copy


def test_kd_loss_is_zero_for_equal_logits_and_ignores_unlabelled_tokens():
    from lmkernel.compress.distill import kd_loss

    logits = torch.randn(4, 3)
    assert kd_loss(logits, logits, None, 2.0).item() == pytest.approx(0.0, abs=1e-6)
    assert kd_loss(logits, -logits, None, 2.0).item() > 0
    student, teacher = torch.randn(2, 5, 3), torch.randn(2, 5, 3)
    labels = torch.full((2, 5), -100)
    labels[0, 1] = 2
    only = kd_loss(student[0, 1:2], teacher[0, 1:2], None, 2.0)
    assert kd_loss(student, teacher, labels, 2.0).item() == pytest.approx(only.item(), rel=1e-5)
    teacher[1] += 100  # unlabelled positions do not count
    assert kd_loss(student, teacher, labels, 2.0).item() == pytest.approx(only.item(), rel=1e-5)


def test_distiller_trains_the_student_only_and_keeps_the_teacher_in_eval():
    from transformers import BertConfig, BertForTokenClassification

    from lmkernel.compress.distill import Distiller, make_student

    torch.manual_seed(0)
    teacher = BertForTokenClassification(BertConfig(vocab_size=30, hidden_size=16, num_hidden_layers=2,
                                                    num_attention_heads=2, intermediate_size=32, num_labels=3))
    student, _ = make_student(teacher, 1)
    d = Distiller(student, teacher).train()
    assert not teacher.training and student.training
    assert all(not p.requires_grad for p in teacher.parameters())
    ids = torch.randint(5, 30, (2, 6))
    labels = torch.tensor([[-100, 1, 2, 0, -100, -100], [-100, 0, 0, 1, 2, -100]])
    out = d(input_ids=ids, attention_mask=torch.ones_like(ids), labels=labels)
    assert out.logits.shape == (2, 6, 3) and out.loss.requires_grad
    out.loss.backward()
    assert student.classifier.weight.grad is not None and teacher.classifier.weight.grad is None


def test_unstructured_prune_reaches_the_sparsity_and_keeps_shapes(trained_run, sparse_result):
    from lmkernel.compress.prune import prunable_linears

    card = json.loads((sparse_result.out_dir / "model" / "lmkernel.json").read_text())
    assert card["weights"] == "pruned" and card["pruning"]["structured"] == []
    assert card["pruning"]["reached_sparsity"] == pytest.approx(0.4, abs=1e-3)
    pruned = lmkernel.load(sparse_result.out_dir).model
    original = lmkernel.load(trained_run).model
    zeros = total = 0
    for (_name, m), (_, o) in zip(prunable_linears(pruned), prunable_linears(original)):
        assert m.weight.shape == o.weight.shape
        zeros, total = zeros + int((m.weight == 0).sum()), total + m.weight.numel()
    assert zeros / total == pytest.approx(0.4, abs=1e-3)
    assert torch.equal(pruned.classifier.weight, original.classifier.weight)  # the head is left alone
    assert sparse_result.result.params == sparse_result.original.params


def test_magnitude_prune_is_global_and_recovery_keeps_the_mask(trained_run, compressor):
    from lmkernel.compress.prune import finish_magnitude_prune, magnitude_prune

    small, big = nn.Linear(10, 10), nn.Linear(10, 10)
    with torch.no_grad():
        small.weight.fill_(0.01)
        big.weight.fill_(1.0)
    model = nn.Sequential(small, big)
    magnitude_prune(model, 0.5)
    assert finish_magnitude_prune(model) == 0.5
    assert (small.weight == 0).all() and (big.weight != 0).all()  # global: one layer can lose everything

    result = compressor(trained_run, "prune", trained_run.parent / "tiny-sparse-ft", sparsity=0.5, finetune=1)
    card = json.loads((result.out_dir / "model" / "lmkernel.json").read_text())
    assert card["pruning"]["finetune_epochs"] == 1
    assert card["pruning"]["reached_sparsity"] == pytest.approx(0.5, abs=1e-3)  # training did not refill zeros


def test_distill_and_sparsity_from_the_command_line(trained_run, tmp_path):
    bounds = ["--max-examples", "20", "--latency-samples", "3", "-q"]
    out = runner.invoke(app, ["compress", str(trained_run), "-m", "distill", "--layers", "1", "--finetune", "1",
                              "--data", str(trained_run / "spec.yaml"), "-o", str(tmp_path / "d"), *bounds])
    assert out.exit_code == 0, out.output
    assert "| d |" in out.output and json.loads((tmp_path / "d" / "model" / "config.json").read_text())[
        "num_hidden_layers"] == 1
    out = runner.invoke(app, ["compress", str(trained_run), "-m", "prune", "--sparsity", "0.3", "--structured",
                              "none", "-o", str(tmp_path / "s"), *bounds])
    assert out.exit_code == 0, out.output
    card = json.loads((tmp_path / "s" / "model" / "lmkernel.json").read_text())
    assert card["pruning"]["reached_sparsity"] == pytest.approx(0.3, abs=1e-3)


@pytest.mark.parametrize("args,message", [
    (["-m", "prune", "--sparsity", "1.5"], "--sparsity 1.5 is outside (0, 1)"),
    (["-m", "prune", "--sparsity", "0.4", "--structured", "rows"], "--structured 'rows': unknown part(s) rows"),
    (["-m", "distill"], "--method distill needs --layers"),
    (["-m", "distill", "--layers", "0"], "--layers 0 must be at least 1"),
    (["-m", "distill", "--layers", "2"], "--layers 2: the teacher has 2 layers, a student needs fewer"),
    (["-m", "distill", "--layers", "1", "--data", "nope.yaml"], "spec not found: nope.yaml"),
    (["-m", "int8", "--layers", "1"], "--layers does not apply to --method int8"),
])
def test_bad_distill_and_prune_arguments_are_clear_errors(trained_run, tmp_path, args, message):
    out = runner.invoke(app, ["compress", str(trained_run), *args, "-o", str(tmp_path / "x")])
    assert out.exit_code == 2 and message in out.output and "Traceback" not in out.output, out.output
    assert not (tmp_path / "x" / "model").exists()


def test_distill_without_training_data_is_a_clear_error(trained_run, tmp_path):
    lonely = tmp_path / "lonely"
    shutil.copytree(trained_run / "model", lonely / "model")  # no spec.yaml next to it
    dev = trained_run.parent.parent / "dev.csv"
    out = runner.invoke(app, ["compress", str(lonely), "-m", "distill", "--layers", "1", "--data", str(dev),
                              "-o", str(tmp_path / "x"), "--max-examples", "10"])
    assert out.exit_code == 2 and "--method distill needs training data" in out.output, out.output
    assert "--data SPEC.yaml" in out.output


def test_distill_rejects_models_without_a_layer_list():
    from lmkernel.compress.distill import make_student

    with pytest.raises(LmkError, match="cannot find the transformer layers"):
        make_student(nn.Sequential(nn.Linear(2, 2)), 1)


def _ner_data():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).parents[1] / "ner" / "ner_data.py"
    spec = importlib.util.spec_from_file_location("_lmk_ner_data", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_distill_a_ner_run(tiny_bert, tmp_path, compressor):
    from lmkernel.spec import parse_spec

    data = _ner_data()
    data.write_jsonl(tmp_path / "train.jsonl", data.make_sentences(120, seed=1))
    data.write_jsonl(tmp_path / "dev.jsonl", data.make_sentences(24, seed=2))
    spec = parse_spec({"task": {"type": "ner"},
                       "data": {"train": str(tmp_path / "train.jsonl"), "validation": str(tmp_path / "dev.jsonl")},
                       "model": {"name": str(tiny_bert)}, "tuning": {"method": "full"},
                       "train": {"epochs": 2, "batch_size": 16, "lr": 3e-3, "precision": "fp32"},
                       "output": {"dir": str(tmp_path / "runs" / "ner")}})
    run = lmkernel.run(spec, progress=False).run_dir
    result = compressor(run, "distill", tmp_path / "ner-1", layers=1, finetune=1)
    student = lmkernel.load(result.out_dir)
    assert student.card["task"] == "ner" and student.model.config.num_hidden_layers == 1
    assert "f1" in result.result.metrics and 0 <= result.result.metrics["f1"] <= 1
    assert isinstance(student.predict(["the hotel room was great"])[0]["entities"], list)
