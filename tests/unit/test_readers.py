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


# ---- csv module dialects, strict (issue 21 item 1) ------------------------------------------------------


def test_inch_mark_in_an_unquoted_field_does_not_swallow_the_next_row(tmp_path):
    p = tmp_path / "q.csv"
    p.write_text('text,label\nThe 5" screen is great,positive\ngood film,positive\nbad film,negative\n')
    ds = read(p, on_bad_rows="skip")
    assert [(e.text, e.line) for e in ds.examples] == [
        ('The 5" screen is great', 2), ("good film", 3), ("bad film", 4)] and ds.bad == []


def test_quoted_field_with_a_blank_line_and_doubled_quotes(tmp_path):
    p = tmp_path / "a.csv"
    p.write_text('text,label\n"para one\n\npara ""two""",pos\nnext,neg\n')
    ds = read(p)
    assert [(e.text, e.label, e.line) for e in ds.examples] == [
        ('para one\n\npara "two"', "pos", 2), ("next", "neg", 5)]


@pytest.mark.parametrize("eol", ["\r", "\r\n", "\n"])
def test_any_line_ending_including_cr_only(tmp_path, eol):
    p = tmp_path / "a.csv"
    p.write_bytes(eol.join(["text,label", "good,pos", '"two' + eol + 'lines",neg', "bad,neg", ""]).encode())
    ds = read(p)
    assert [(e.text, e.line) for e in ds.examples] == [("good", 2), ("two" + eol + "lines", 3), ("bad", 5)]


def test_duplicate_column_name_is_an_error_naming_both_columns(tmp_path):
    p = tmp_path / "a.csv"
    p.write_text("text,label,text\na,pos,b\n")
    with pytest.raises(LmkError, match=r"column 'text' appears twice in the header \(columns 1 and 3\)"):
        read(p)


def test_tab_inside_a_tsv_text_is_a_bad_row_not_a_new_class(tmp_path):
    p = tmp_path / "a.tsv"
    p.write_text("text\tlabel\ngood\tpos\nsplit\ttext\tneg\nbad\tneg\n")
    with pytest.raises(LmkError, match="has 3 field"):
        read(p)
    ds = read(p, on_bad_rows="skip")
    assert [e.label for e in ds.examples] == ["pos", "neg"] and [b.line for b in ds.bad] == [3]


def test_tsv_is_unquoted_as_glue_ships_it(tmp_path):
    import csv

    p = tmp_path / "a.tsv"
    rows = [['"Fairies don\'t exist" - fine.', "pos"], ['say "hi', "neg"], ["plain", "pos"]]
    with open(p, "w", newline="") as fh:
        csv.writer(fh, dialect="excel-tab", quoting=csv.QUOTE_NONE, quotechar="\x01").writerows([["text", "label"],
                                                                                              *rows])
    assert [[e.text, e.label] for e in read(p).examples] == rows


@pytest.mark.parametrize("content,reason,line", [
    ("text,label\ngood,pos\nextra,pos,field\nbad,neg\n", "has 3 field(s), the header has 2", 3),
    ("text,label\ngood,pos\nshort\nbad,neg\n", "has 1 field(s), the header has 2", 3),
    ('text,label\ngood,pos\n"closed"then,pos\nbad,neg\n', "malformed row", 3),
    ('text,label\ngood,pos\nbad,neg\n"never closed,pos\nlost,neg\n', "lines 4-5 read as one record", 4),
])
def test_rows_the_parser_cannot_read_are_counted_or_an_error(tmp_path, content, reason, line):
    p = tmp_path / "a.csv"
    p.write_text(content)
    with pytest.raises(LmkError) as e:
        read(p)
    assert reason in str(e.value) and f"a.csv line {line}" in str(e.value)
    ds = read(p, on_bad_rows="skip")
    assert [e.text for e in ds.examples] == ["good", "bad"] and [b.line for b in ds.bad] == [line]


def test_undecodable_byte_inside_a_multiline_field_costs_that_row_only(tmp_path):
    p = tmp_path / "a.csv"
    p.write_bytes(b'text,label\n"caf\xe9\nau lait",pos\ngood,pos\nbad,neg\n')
    ds = read(p, on_bad_rows="skip")
    assert [e.line for e in ds.examples] == [4, 5] and "undecodable" in ds.bad[0].reason and ds.bad[0].line == 2


def test_jsonl_cr_only_lines_and_duplicate_keys(tmp_path):
    p = tmp_path / "a.jsonl"
    p.write_bytes(b'{"text": "a", "label": 1}\r{"text": "b", "label": 2, "label": 3}\r{"text": "c", "label": 1}\r')
    ds = read(p, on_bad_rows="skip")
    assert [e.text for e in ds.examples] == ["a", "c"] and "appears twice" in ds.bad[0].reason and ds.bad[0].line == 2
