import json

import pytest

from lmkernel.errors import LmkError
from lmkernel.spec import DataSpec
from lmkernel.tasks import get_task

TASK = get_task("classification")


def read(path, labels=None, on_bad_rows="error", **kw):
    opts = dict(format=kw.pop("fmt", "auto"), text_column="text", label_column="label")
    opts.update(kw)
    return TASK.read(path, DataSpec(train=path, on_bad_rows=on_bad_rows, **opts), labels)


def test_csv_with_quotes_multiline_and_chinese(tmp_path):
    p = tmp_path / "a.csv"
    p.write_text('text,label\n"hello, world",pos\n"two\nlines",neg\n太差了,neg\n', encoding="utf-8")
    ds = read(p)
    assert [(e.text, e.label, e.line) for e in ds.examples] == [
        ("hello, world", "pos", 2), ("two\nlines", "neg", 3), ("太差了", "neg", 5)]


def test_tsv_keeps_quotes_literally_and_int_labels(tmp_path):
    p = tmp_path / "a.tsv"
    p.write_text('sentence\tlabel\nit \'s "fine \t1\nbad \t0\n', encoding="utf-8")
    ds = read(p, text_column="sentence")
    assert [(e.text, e.label) for e in ds.examples] == [("it 's \"fine", "1"), ("bad", "0")]
    assert TASK.infer_labels(ds.examples) == ["0", "1"]


def test_jsonl_with_int_labels(tmp_path):
    p = tmp_path / "a.jsonl"
    p.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in [
        {"text": "good", "label": 1}, {"text": "差", "label": 0}]) + "\n", encoding="utf-8")
    assert [(e.text, e.label) for e in read(p).examples] == [("good", "1"), ("差", "0")]


def test_labels_sort_naturally():
    from lmkernel.tasks.base import Example

    ex = [Example("t", lab, "f", 1) for lab in ["10", "2", "1"]]
    assert TASK.infer_labels(ex) == ["1", "2", "10"]


@pytest.mark.parametrize("content,reason,line", [
    (b"text,label\ngood,pos\n,neg\n", "empty text", 3),
    (b"text,label\ngood,pos\nbad\n", "has 1 field(s)", 3),
    (b"text,label\ngood,pos\n\xff\xfe bad,neg\n", "undecodable bytes", 3),
    (b"text,label\ngood,pos\nok,\n", "empty or invalid label", 3),
])
def test_bad_rows_name_file_line_and_fix(tmp_path, content, reason, line):
    p = tmp_path / "bad.csv"
    p.write_bytes(content)
    with pytest.raises(LmkError) as e:
        read(p)
    msg = str(e.value)
    assert reason in msg and f"bad.csv line {line}" in msg and "on_bad_rows: skip" in msg


def test_skip_mode_counts_bad_rows(tmp_path):
    p = tmp_path / "bad.csv"
    p.write_bytes(b"text,label\ngood,pos\n,neg\n\xff,neg\nfine,neg\n")
    ds = read(p, on_bad_rows="skip")
    assert len(ds.examples) == 2 and [b.line for b in ds.bad] == [3, 4]


def test_unseen_label_in_validation(tmp_path):
    p = tmp_path / "dev.csv"
    p.write_text("text,label\ngood,pos\nmeh,neutral\n", encoding="utf-8")
    with pytest.raises(LmkError, match="label 'neutral' does not occur in the training data"):
        read(p, labels=["neg", "pos"])


def test_missing_column_names_columns_and_closest(tmp_path):
    p = tmp_path / "a.csv"
    p.write_text("txt,label\ngood,pos\n", encoding="utf-8")
    with pytest.raises(LmkError) as e:
        read(p)
    assert "did you mean 'txt'" in str(e.value) and "data.text_column" in str(e.value)


def test_bad_json_line_and_missing_key(tmp_path):
    p = tmp_path / "a.jsonl"
    p.write_text('{"text": "a", "label": 1}\n{not json}\n{"text": "b"}\n', encoding="utf-8")
    ds = read(p, on_bad_rows="skip")
    assert [(b.line, b.reason.split(":")[0]) for b in ds.bad] == [
        (2, "invalid JSON"), (3, "missing key(s) ['label']; keys are ['text']")]


def test_missing_file_empty_file_and_unknown_extension(tmp_path):
    with pytest.raises(LmkError, match="data file not found"):
        read(tmp_path / "none.csv")
    (tmp_path / "e.csv").write_text("", encoding="utf-8")
    with pytest.raises(LmkError, match="empty"):
        read(tmp_path / "e.csv")
    (tmp_path / "x.parquet").write_text("x", encoding="utf-8")
    with pytest.raises(LmkError, match="set data.format"):
        read(tmp_path / "x.parquet")


def test_single_label_training_data_is_rejected():
    from lmkernel.tasks.base import Example

    with pytest.raises(LmkError, match="at least 2"):
        TASK.infer_labels([Example("a", "pos", "f", 2)])
