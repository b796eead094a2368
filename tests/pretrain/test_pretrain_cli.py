"""End to end: `lmkernel pretrain` for mlm and clm, generate, fine-tune the result, resume, errors."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from pretrain_helpers import write_spec
from typer.testing import CliRunner

from lmkernel.cli import app

runner = CliRunner()


def _pretrain(spec: Path, *args: str):
    result = runner.invoke(app, ["pretrain", str(spec), "-q", *args])
    assert result.exit_code == 0, result.output
    return result


def _metrics(run: Path) -> dict:
    return json.loads((run / "metrics.json").read_text())


def test_clm_from_scratch_writes_hf_artifact_and_generates(corpus, tmp_path, monkeypatch):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    monkeypatch.chdir(tmp_path)
    out = _pretrain(write_spec(tmp_path / "clm.yaml", "clm")).output
    assert "parameters" in out and "perplexity=" in out
    run = tmp_path / "runs" / "clm"
    m = _metrics(run)
    assert m["perplexity"] == pytest.approx(math.exp(m["loss"]), rel=1e-6)
    assert m["loss"] < math.log(300)  # learned something: below a uniform guess over the vocabulary
    card = json.loads((run / "model" / "lmkernel.json").read_text())
    assert card["task"] == "pretrain" and card["arch"] == "decoder" and card["tokenizer"] == "trained"
    assert m["training"]["document boundary"] == "auto: line (1 file)"  # one document per line: no paragraphs
    assert card["data"]["document_boundary"] == "auto"
    tok = AutoTokenizer.from_pretrained(run / "model", local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(run / "model", local_files_only=True)
    assert type(model).__name__ == "LlamaForCausalLM" and len(tok) <= 300
    assert (run / "report.md").exists() and list((run / "tensorboard").iterdir())
    assert not (run / "checkpoints").exists() and not (run / "tokenizer").exists()
    gen = runner.invoke(app, ["generate", str(run), "the market", "--max-new-tokens", "5"])
    assert gen.exit_code == 0, gen.output  # a barely trained model may well answer with spaces
    from lmkernel.artifact import load_generator

    (reply,) = load_generator(run).generate(["the market"], max_new_tokens=5, raw=True)
    assert reply["prompt_tokens"] > 0 and 1 <= reply["tokens"] <= 5


def test_mlm_with_whole_words_then_fine_tune_with_lmkernel_run(corpus, tmp_path, monkeypatch, data_dir):
    from transformers import AutoModelForMaskedLM

    monkeypatch.chdir(tmp_path)
    _pretrain(write_spec(tmp_path / "mlm.yaml", "mlm", model=None).with_name("mlm.yaml"),
              "--set", "task.whole_word_mask=true")
    run = tmp_path / "runs" / "mlm"
    assert _metrics(run)["perplexity"] > 1
    assert type(AutoModelForMaskedLM.from_pretrained(run / "model")).__name__ == "BertForMaskedLM"
    spec = tmp_path / "cls.yaml"
    spec.write_text("data: {train: data/train.csv, validation: data/dev.csv}\n"
                    "train: {epochs: 1, batch_size: 16, lr: 3e-3}\noutput: {dir: runs/cls}\n", encoding="utf-8")
    # the run dir itself, as in the README (its artifact is in model/)
    ft = runner.invoke(app, ["run", str(spec), "-q", "--set", f"model.name={run}"])
    assert ft.exit_code == 0, ft.output
    assert 0 <= _metrics(tmp_path / "runs" / "cls")["accuracy"] <= 1


def test_continued_pretraining_reuses_the_backbone_tokenizer(corpus, tmp_path, monkeypatch, tiny_bert):
    monkeypatch.chdir(tmp_path)
    _pretrain(write_spec(tmp_path / "cont.yaml", "mlm", model=f"{{name: {tiny_bert}}}"),
              "--set", "train.max_steps=4")
    card = json.loads((tmp_path / "runs" / "mlm" / "model" / "lmkernel.json").read_text())
    assert card["tokenizer"] == "backbone" and card["base_model"] == str(tiny_bert)
    from transformers import AutoTokenizer

    saved = AutoTokenizer.from_pretrained(tmp_path / "runs" / "mlm" / "model", local_files_only=True)
    assert saved.get_vocab() == AutoTokenizer.from_pretrained(tiny_bert, local_files_only=True).get_vocab()


def _lmk(*args: str, cwd: Path, fault: str | None = None, launcher: list[str] | None = None):
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    env.pop("LMKERNEL_FAULT", None)
    if fault:
        env["LMKERNEL_FAULT"] = fault
    return subprocess.run([*(launcher or [sys.executable, "-m"]), "lmkernel.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


def test_kill_9_mid_epoch_then_resume_matches_uninterrupted_run(corpus, tmp_path):
    spec = write_spec(tmp_path / "clm.yaml", "clm")
    common = ["-q", "--set", "train.checkpoint_every=3", "--set", "train.threads=1"]
    done = _lmk("pretrain", str(spec), *common, "--set", "output.dir=ref", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    killed = _lmk("pretrain", str(spec), *common, "--set", "output.dir=crash", cwd=tmp_path, fault="step:5")
    assert killed.returncode == -signal.SIGKILL and (tmp_path / "crash" / "tokenizer").exists()
    resumed = _lmk("pretrain", str(spec), *common, "--set", "output.dir=crash", "--resume", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed from" in resumed.stdout and "training a" not in resumed.stdout  # tokenizer reused
    ref, got = _metrics(tmp_path / "ref"), _metrics(tmp_path / "crash")
    assert got["loss"] == pytest.approx(ref["loss"], abs=1e-6)
    assert got["training"]["optimizer steps"] == ref["training"]["optimizer steps"] == 12


def test_two_processes_stream_disjoint_shards_of_the_corpus(corpus, tmp_path):
    """torchrun, 2 CPU processes (gloo): each rank streams its own shard of the blocks; one artifact."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(port),
                "-m"]
    spec = write_spec(tmp_path / "clm.yaml", "clm")
    done = _lmk("pretrain", str(spec), "-q", "--set", "train.threads=1", "--set", "output.dir=ddp", cwd=tmp_path,
                launcher=launcher)
    assert done.returncode == 0, done.stderr[-3000:]
    m = _metrics(tmp_path / "ddp")
    assert m["training"]["processes"] == 2 and m["training"]["optimizer steps"] == 12
    assert m["loss"] < math.log(300)  # learned: below a uniform guess over the vocabulary
    assert (tmp_path / "ddp" / "model" / "lmkernel.json").exists() and not (tmp_path / "ddp" / "checkpoints").exists()
    assert done.stdout.count("parameters") == 1  # one process reports; the other trains quietly


@pytest.mark.parametrize("sets,message", [
    (["model.arch=null", "model.name=null"], "model.name is empty"),
    (["model.name=minilm"], "not both"),
    (["task.objective=mlm"], "trains with objective clm"),
    (["data.train=corpus/nothing.txt"], "corpus not found"),
    (["data.train=corpus/empty.txt"], "fewer than one batch"),
    (["data.max_length=1024", "model.max_position_embeddings=512"], "exceeds the model's"),
])
def test_user_errors_exit_2_with_a_clear_message(corpus, tmp_path, monkeypatch, sets, message):
    monkeypatch.chdir(tmp_path)
    (corpus / "empty.txt").write_text("\n")
    spec = write_spec(tmp_path / "clm.yaml", "clm")
    args = [x for s in sets for x in ("--set", s)]
    result = runner.invoke(app, ["pretrain", str(spec), "-q", *args])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output


def test_pretrain_command_refuses_other_tasks(spec_file):
    result = runner.invoke(app, ["pretrain", str(spec_file)])
    assert result.exit_code == 2 and "task.type: pretrain" in result.output


def test_seeded_hold_out_and_lmkernel_run_accepts_a_pretrain_spec(corpus, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = write_spec(tmp_path / "clm.yaml", "clm")
    result = runner.invoke(app, ["run", str(spec), "-q", "--set", "data.validation=null", "--set",
                                 "data.split.validation=0.2", "--set", "train.max_steps=2"])
    assert result.exit_code == 0, result.output
    m = _metrics(tmp_path / "runs" / "clm")
    assert m["validation"]["tokens"] > 0 and m["training"]["optimizer steps"] == 2
