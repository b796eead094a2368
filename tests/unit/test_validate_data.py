"""`lmkernel validate` rejects the data `run` would reject, from a bounded sample (issue 21 item 6)."""

import pytest
from typer.testing import CliRunner

from lmkernel.cli import app
from lmkernel.data.check import check_data
from lmkernel.errors import LmkError, SpecErrors
from lmkernel.spec import load_spec

runner = CliRunner()


def validate(*args, code=0):
    result = runner.invoke(app, ["validate", *map(str, args)])
    assert result.exit_code == code, result.output
    return result.output


def spec(tmp_path, data, task="classification"):
    p = tmp_path / "s.yaml"
    p.write_text(f"task: {{type: {task}}}\ndata: {data}\n")
    return p


@pytest.fixture()
def csvs(tmp_path):
    (tmp_path / "train.csv").write_text("text,label\n" + "".join(f"t{i},{'pos' if i % 2 else 'neg'}\n"
                                                                 for i in range(20)))
    (tmp_path / "dev.csv").write_text("text,label\ngood,pos\nmeh,neutral\n")
    return tmp_path


def test_missing_train_file_is_reported_and_no_data_skips_the_check(tmp_path):
    s = spec(tmp_path, "{train: missing.csv}")
    assert "data file not found" in validate(s, code=2)
    assert "ok" in validate(s, "--no-data")


def test_wrong_column_is_reported(csvs):
    out = validate(spec(csvs, "{train: train.csv, text_column: sentence}"), code=2)
    assert "column 'sentence'" in out and "data.text_column" in out


def test_every_data_file_is_checked_and_all_problems_reported_at_once(csvs):
    (csvs / "test.csv").write_text("txt,label\nx,pos\n")
    s = spec(csvs, "{train: train.csv, validation: dev.csv, test: test.csv}")
    with pytest.raises(SpecErrors) as e:
        check_data(load_spec(s))
    text = e.value.render()
    assert "2 problem(s)" in text and "label 'neutral' does not occur" in text and "column 'text'" in text


def test_ok_names_what_was_read(csvs):
    (csvs / "dev.csv").write_text("text,label\ngood,pos\n")
    out = validate(spec(csvs, "{train: train.csv, validation: dev.csv}"))
    assert "data.train" in out and "20 usable row(s), 2 label(s)" in out and "data.validation" in out
    assert out.strip().endswith("ok")


def test_bad_rows_follow_on_bad_rows(csvs):
    (csvs / "train.csv").write_text("text,label\na,pos\nb,neg\nc,neg,extra\n")
    assert "has 3 field(s)" in validate(spec(csvs, "{train: train.csv}"), code=2)
    assert "1 bad row(s) skipped" in validate(spec(csvs, "{train: train.csv, on_bad_rows: skip}"))


def test_sample_is_bounded_and_partial_samples_skip_whole_file_label_checks(tmp_path):
    rows = "".join(f"t{i},{'pos' if i < 50 else 'neg'}\n" for i in range(100))  # sorted: neg only after row 50
    (tmp_path / "train.csv").write_text("text,label\n" + rows)
    (tmp_path / "dev.csv").write_text("text,label\nx,neg\n")
    s = load_spec(spec(tmp_path, "{train: train.csv, validation: dev.csv}"))
    notes = check_data(s, limit=10)
    assert "10 usable row(s) in the first 10 read" in notes[0]
    (tmp_path / "train.csv").write_text("text,label\na,pos\nb,pos\n")
    with pytest.raises(LmkError, match="at least 2"):  # whole file read: one label is a real problem
        check_data(s, limit=10)


def test_ner_and_pretrain_data_are_checked(tmp_path):
    (tmp_path / "train.conll").write_text("EU B-ORG\nrejects O\n\nPeter B-PER\n")
    assert "usable row(s)" in validate(spec(tmp_path, "{train: train.conll}", task="ner"))
    (tmp_path / "bad.conll").write_text("EU\n")
    assert "column" in validate(spec(tmp_path, "{train: bad.conll}", task="ner"), code=2)
    (tmp_path / "book.txt").write_text("A para\nline two\n\nB para\n")
    out = validate(spec(tmp_path, "{train: book.txt}", task="pretrain"))
    assert "2 document(s)" in out and "blank_line (1 file)" in out
    (tmp_path / "empty.txt").write_text("\n")
    assert "no text in" in validate(spec(tmp_path, "{train: empty.txt}", task="pretrain"), code=2)
    assert "corpus not found" in validate(spec(tmp_path, "{train: nothing.txt}", task="pretrain"), code=2)
