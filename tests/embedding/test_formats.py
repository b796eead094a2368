"""The embedding task's data: pairs, triplets and scored pairs told apart by columns; bad rows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lmkernel.errors import LmkError
from lmkernel.spec import DataSpec
from lmkernel.tasks import get_task


def _jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n" for r in rows),
                    encoding="utf-8")
    return path


def _read(path: Path, on_bad_rows: str = "error", **options):
    task = get_task("embedding", options)
    return task.read(path, DataSpec(train=path, on_bad_rows=on_bad_rows), None)


def _encode(path: Path, tiny_bert: Path, **options):
    from transformers import AutoTokenizer

    task = get_task("embedding", options)
    ds = task.read(path, DataSpec(train=path), None)
    feats = task.encode(ds.examples, AutoTokenizer.from_pretrained(str(tiny_bert)), [], 32)
    return task.collate(feats, 0)


def test_pairs_triplets_and_scored_are_detected_from_the_columns(tmp_path, tiny_bert):
    pairs = _jsonl(tmp_path / "p.jsonl", [{"anchor": "the film", "positive": "the book"}] * 2)
    assert set(_encode(pairs, tiny_bert)) == {"input_ids", "attention_mask", "input_ids2", "attention_mask2"}
    triplets = _jsonl(tmp_path / "t.jsonl", [{"anchor": "a", "positive": "the film", "negative": "the room"}] * 2)
    assert {"input_ids3", "attention_mask3"} <= set(_encode(triplets, tiny_bert))
    scored = tmp_path / "s.tsv"
    scored.write_text("sentence1\tsentence2\tscore\nthe film\tthe book\t4.5\nthe room\tthe hotel\t1\n",
                      encoding="utf-8")
    batch = _encode(scored, tiny_bert)
    assert batch["scores"].tolist() == [4.5, 1.0] and "input_ids3" not in batch
    ds = _read(scored)
    assert [e.fields["texts"] for e in ds.examples] == [["the film", "the book"], ["the room", "the hotel"]]
    assert [e.line for e in ds.examples] == [2, 3]


def test_columns_and_format_can_be_named(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("q,doc,label\nhello,world,1\n", encoding="utf-8")
    ds = _read(path, text1_column="q", text2_column="doc", format="pairs")  # the label column is ignored
    assert ds.examples[0].fields["texts"] == ["hello", "world"] and ds.examples[0].label is None
    with pytest.raises(LmkError, match="no column for the second text \\('answer'\\)"):
        _read(path, text1_column="q", text2_column="answer")
    with pytest.raises(LmkError, match="task.format is triplets, but there is no negative column"):
        _read(path, text1_column="q", text2_column="doc", format="triplets")


def test_unknown_columns_name_the_options(tmp_path):
    path = _jsonl(tmp_path / "x.jsonl", [{"a": "one", "b": "two"}])
    with pytest.raises(LmkError) as e:
        _read(path)
    assert "['a', 'b']" in e.value.what and "task.text1_column" in e.value.fix


def test_bad_rows_name_file_and_line_or_are_counted(tmp_path):
    rows = [{"sentence1": "good", "sentence2": "fine", "score": 3},
            {"sentence1": "no second text", "score": 2},
            {"sentence1": "x", "sentence2": "y", "score": "high"},
            {"sentence1": "  ", "sentence2": "y", "score": 1},
            {"sentence1": "x", "sentence2": "y", "score": "nan"},
            {"sentence1": "last", "sentence2": "one", "score": "0.5"}]
    path = _jsonl(tmp_path / "bad.jsonl", rows)
    with pytest.raises(LmkError) as e:
        _read(path)
    assert e.value.where == f"{path} line 2" and "missing text in column 'sentence2'" in e.value.what
    assert "3 more bad row(s)" in e.value.what
    ds = _read(path, on_bad_rows="skip")
    assert [e.line for e in ds.examples] == [1, 6] and [e.label for e in ds.examples] == [3.0, 0.5]
    reasons = {b.line: b.reason for b in ds.bad}
    assert set(reasons) == {2, 3, 4, 5}
    assert "score 'high' in column 'score' is not a number" in reasons[3]
    assert "empty text in column 'sentence1'" in reasons[4]
    assert "not a number" in reasons[5]


def test_loss_must_fit_the_format(tmp_path):
    pairs = _jsonl(tmp_path / "p.jsonl", [{"anchor": "a", "positive": "b"}])
    with pytest.raises(LmkError, match="task.loss is cosent"):
        _read(pairs, loss="cosent")
    scored = _jsonl(tmp_path / "s.jsonl", [{"text1": "a", "text2": "b", "score": 1}])
    with pytest.raises(LmkError, match="task.loss is mnrl"):
        _read(scored, loss="mnrl")


def test_empty_file_is_an_error(tmp_path):
    path = tmp_path / "e.csv"
    path.write_text("anchor,positive\n", encoding="utf-8")
    with pytest.raises(LmkError, match="no rows"):
        _read(path)


def test_model_auto_picks_the_encoder(tmp_path):
    from lmkernel.models.choose import choose_backbone, installed

    if not installed("minilm"):
        pytest.skip("minilm is not installed")
    assert choose_backbone("embedding", ["where is my parcel?"]).name == "minilm"
    chinese = choose_backbone("embedding", ["我的快递到哪里了"] * 3)
    assert chinese.name == "minilm" and "[UNK]" in chinese.reason
