"""Vocabulary adaptation (tokenizer.extend): an encoder learns the corpus's unknown characters."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pretrain_helpers import write_spec
from typer.testing import CliRunner

from lmkernel.cli import app

runner = CliRunner()


def _tokenizer(path: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path, local_files_only=True)


def test_extend_tokenizer_covers_unknown_characters_and_folds_full_width(tiny_bert):
    from lmkernel.pretrain.vocab import extend_tokenizer, unk_share

    base = _tokenizer(tiny_bert)
    texts = ["股市今天下跌", "股市上涨", "投资者担忧股市", "ＡＢＣ 股市"] * 2
    assert unk_share(base, texts) > 0.5
    new, ext = extend_tokenizer(base, texts, min_frequency=2, max_new=1000)
    assert ext.unk_before == pytest.approx(unk_share(base, texts))
    assert ext.unk_after == 0.0 and ext.added >= len(set("股市今天下跌上涨投资者担忧"))
    assert new.tokenize("股市") == ["股", "市"] and new.tokenize("ＡＢＣ") == new.tokenize("abc")
    # the old pieces keep their ids, the new ones follow them
    old_vocab = base.get_vocab()
    assert all(new.get_vocab()[t] == i for t, i in old_vocab.items())
    assert min(new.convert_tokens_to_ids(["股", "市"])) >= len(old_vocab)
    # min_frequency and max_new bound what is added
    few, small = extend_tokenizer(base, texts, min_frequency=2, max_new=3)
    assert small.added == 3 and len(few) == len(base) + 3


def test_extend_refuses_a_tokenizer_without_unknown_characters(tiny_llama):
    from lmkernel.errors import LmkError
    from lmkernel.pretrain.vocab import extend_tokenizer

    with pytest.raises(LmkError) as e:
        extend_tokenizer(_tokenizer(tiny_llama), ["你好"], 1, 10)
    assert e.value.where == "tokenizer.extend" and "WordPiece" in e.value.what


def test_pretrain_extends_grows_embeddings_reports_and_fine_tunes(corpus, tmp_path, monkeypatch, tiny_bert, data_dir):
    from transformers import AutoModelForMaskedLM

    monkeypatch.chdir(tmp_path)
    spec = write_spec(tmp_path / "ext.yaml", "mlm", model=f"{{name: {tiny_bert}}}")
    result = runner.invoke(app, ["pretrain", str(spec), "-q", "--set", "train.max_steps=4", "--set",
                                 "tokenizer.extend=true", "--set", "tokenizer.min_frequency=1"])
    assert result.exit_code == 0, result.output
    run = tmp_path / "runs" / "mlm"
    card = json.loads((run / "model" / "lmkernel.json").read_text())
    ext = card["vocabulary_extension"]
    assert card["tokenizer"] == "backbone, extended" and ext["added"] > 0 and ext["unk_after"] < ext["unk_before"]
    tok = _tokenizer(run / "model")
    model = AutoModelForMaskedLM.from_pretrained(run / "model")
    assert len(tok) == len(_tokenizer(tiny_bert)) + ext["added"]
    assert model.get_input_embeddings().weight.shape[0] == len(tok) == model.config.vocab_size
    report = (run / "report.md").read_text()
    assert "[UNK] share of the corpus" in report and "vocabulary extension" in report
    # the adapted model fine-tunes like any other, with its extended tokenizer
    cls = tmp_path / "cls.yaml"
    cls.write_text("data: {train: data/train.csv, validation: data/dev.csv}\n"
                   "train: {epochs: 1, batch_size: 16}\noutput: {dir: runs/cls}\n", encoding="utf-8")
    ft = runner.invoke(app, ["run", str(cls), "-q", "--set", f"model.name={run}"])
    assert ft.exit_code == 0, ft.output


def test_extend_with_a_new_model_is_refused(corpus, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["pretrain", str(write_spec(tmp_path / "s.yaml", "mlm")), "-q",
                                 "--set", "tokenizer.extend=true"])
    assert result.exit_code == 2 and "tokenizer.extend" in result.output and "model.name" in result.output
