"""One prompt path: the CLI, the Python API and the server build the same prompt and answer the same (issue 21, 12)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from serve_helpers import chat_serving
from typer.testing import CliRunner

import lmkernel
from lmkernel.errors import LmkError
from lmkernel.generation import PLAIN, PromptStyle, prompt_ids, prompt_text

SYSTEM = "You are a terse assistant."
PROMPT = "hello there, how are you"


@pytest.fixture(scope="module")
def system_run(tiny_llama, tmp_path_factory) -> Path:
    """A chat run trained with a system prompt (its card says so), on the tiny ChatML Llama."""
    run = tmp_path_factory.mktemp("prompt-paths") / "chat-sys"
    shutil.copytree(tiny_llama, run / "model")
    card = {"task": "chat", "labels": [], "weights": "full", "format": 1, "base_model": str(tiny_llama),
            "task_options": {"type": "chat", "system_prompt": SYSTEM}}
    (run / "model" / "lmkernel.json").write_text(json.dumps(card), encoding="utf-8")
    return run


@pytest.fixture(scope="module")
def lm(system_run):
    return lmkernel.load(system_run)


@pytest.fixture(scope="module")
def client(lm):
    with chat_serving(lm, max_new_tokens=64) as c:
        yield c


def test_prompt_is_templated_with_the_trained_system_prompt(lm):
    ids = lm.prompt_ids(PROMPT)
    text = lm.tokenizer.decode(ids)
    assert SYSTEM in text and text.endswith("<|im_start|>assistant\n")
    assert lm.prompt_ids(messages=[{"role": "user", "content": PROMPT}]) == ids
    own = lm.prompt_ids(PROMPT, system="Be loud.")
    assert "Be loud." in lm.tokenizer.decode(own) and SYSTEM not in lm.tokenizer.decode(own)
    assert lm.prompt_ids(PROMPT, raw=True) == lm.tokenizer(PROMPT)["input_ids"]


def test_cli_python_and_server_answer_the_same(lm, system_run, client):
    """Greedy decoding: the same prompt ids and the same reply from each entry point."""
    from lmkernel.cli import app
    from lmkernel.serve.generation.predictor import GenerationPredictor
    from lmkernel.serve.generation.schemas import ChatMessage

    ids = lm.prompt_ids(PROMPT)
    (py,) = lm.generate(PROMPT, max_new_tokens=8)
    assert py["prompt_tokens"] == len(ids)

    served = GenerationPredictor(lm, prepack=False)
    assert served.encode_prompt(PROMPT, truncate=False) == ids
    assert served.encode_chat([ChatMessage(role="user", content=PROMPT)], truncate=False) == ids

    cli = CliRunner().invoke(app, ["generate", str(system_run), PROMPT, "--max-new-tokens", "8"])
    assert cli.exit_code == 0, cli.output
    assert cli.stdout.removesuffix("\n") == py["text"]

    r = client.post("/v1/generate", json={"prompt": PROMPT, "max_new_tokens": 8, "temperature": 0})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["text"] == py["text"]
    assert body["usage"]["prompt_tokens"] == len(ids) and body["usage"]["completion_tokens"] == py["tokens"]

    r = client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": PROMPT}],
                                                  "max_tokens": 8, "temperature": 0})
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"] == py["text"]
    assert r.json()["usage"]["prompt_tokens"] == len(ids)


def test_raw_is_an_explicit_option_everywhere(lm, client):
    raw_ids = lm.tokenizer(PROMPT)["input_ids"]
    (py,) = lm.generate(PROMPT, raw=True, max_new_tokens=5)
    assert py["prompt_tokens"] == len(raw_ids)
    r = client.post("/v1/generate", json={"prompt": PROMPT, "raw": True, "max_new_tokens": 5, "temperature": 0})
    assert r.status_code == 200, r.text
    assert r.json()["text"] == py["text"] and r.json()["usage"]["prompt_tokens"] == len(raw_ids)
    r = client.post("/v1/completions", json={"prompt": PROMPT, "max_tokens": 5, "temperature": 0})
    assert r.json()["usage"]["prompt_tokens"] == len(raw_ids)  # OpenAI completions: text continued as-is
    r = client.post("/v1/generate", json={"messages": [{"role": "user", "content": "hi"}], "raw": True})
    assert r.status_code == 422 and "raw applies to prompt" in r.json()["error"]["message"]


@pytest.fixture(scope="module")
def plain_dir(tiny_llama, tmp_path_factory) -> Path:
    """The tiny Llama without a chat template (a model pretrained from scratch)."""
    from transformers import AutoTokenizer

    plain = tmp_path_factory.mktemp("prompt-plain") / "plain"
    shutil.copytree(tiny_llama, plain)
    tok = AutoTokenizer.from_pretrained(plain)
    tok.chat_template = None
    (plain / "chat_template.jinja").unlink(missing_ok=True)
    tok.save_pretrained(plain)
    (plain / "chat_template.jinja").unlink(missing_ok=True)
    return plain


def test_messages_to_a_model_without_chat_template_are_a_clear_error(plain_dir):
    from lmkernel.artifact import load_generator

    lm = load_generator(str(plain_dir))
    assert not lm.tokenizer.chat_template
    with pytest.raises(LmkError, match="no chat template"):
        lm.generate([{"role": "user", "content": "hi"}], max_new_tokens=2)
    assert lm.prompt_ids("the cat") == lm.tokenizer("the cat")["input_ids"]  # a prompt is continued as-is
    with chat_serving(lm, max_new_tokens=8) as c:
        for route, body in (("/v1/generate", {"messages": [{"role": "user", "content": "hi"}]}),
                            ("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}]})):
            r = c.post(route, json=body)
            assert r.status_code == 422, r.text
            assert "no chat template" in r.json()["error"]["message"] and r.json()["error"]["param"] == "messages"
        assert c.post("/v1/generate", json={"prompt": "the cat", "max_new_tokens": 2}).status_code == 200


def test_each_task_gives_its_prompt_style(lm):
    from lmkernel.tasks import get_task

    tok = lm.tokenizer
    mt = get_task("translation", {"source_lang": "en", "target_lang": "de"}).prompt_style()
    text, templated = prompt_text(tok, "A dog runs.", style=mt)
    assert templated and "Translate this English sentence into German:\nA dog runs." in text
    assert prompt_text(tok, "A dog runs.", style=mt, raw=True) == ("A dog runs.", False)
    # a pretrained plain LM continues its prompt even where its tokenizer kept a chat template
    assert get_task("pretrain", {"objective": "clm"}).prompt_style() == PLAIN
    assert prompt_ids(tok, "once upon", style=PLAIN) == tok("once upon")["input_ids"]
    with pytest.raises(LmkError, match="pretrained on plain text"):
        prompt_ids(tok, messages=[{"role": "user", "content": "hi"}], style=PLAIN)
    assert get_task("chat", {"system_prompt": "S."}).prompt_style() == PromptStyle(system="S.")


def test_a_template_that_refuses_the_messages_is_a_clear_error(lm):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(lm.path)
    tok.chat_template = "{{ raise_exception('roles must alternate') }}"
    with pytest.raises(LmkError, match="roles must alternate"):
        prompt_ids(tok, "hi")
