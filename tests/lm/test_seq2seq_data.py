"""Translation/summarization readers and scores: aligned files, columns, bad input, metrics."""

from __future__ import annotations

import pytest
from lm_helpers import write_jsonl

from lmkernel.errors import LmkError
from lmkernel.spec import DataSpec
from lmkernel.tasks import get_task


def task(**options):
    return get_task("translation", {"source_lang": "en", "target_lang": "de", **options})


def test_aligned_files_become_prompted_chat_examples(aligned_data):
    ds = task().read(aligned_data / "train", DataSpec(train=aligned_data / "train"), None)
    assert len(ds.examples) == 16 and not ds.bad
    e = ds.examples[1]
    assert e.line == 2 and e.file == str(aligned_data / "train.en")
    assert e.fields["messages"] == [
        {"role": "user", "content": "Translate this English sentence into German:\na dog runs in the park"},
        {"role": "assistant", "content": "ein Hund läuft im Park"}]


def test_misaligned_files_name_the_first_unpaired_line(tmp_path):
    (tmp_path / "t.en").write_text("a\nb\nc\n", encoding="utf-8")
    (tmp_path / "t.de").write_text("A\nB\n", encoding="utf-8")
    with pytest.raises(LmkError) as e:
        task().read(tmp_path / "t", DataSpec(train=tmp_path / "t"), None)
    assert "t.en has 3 lines, t.de has 2" in e.value.what
    assert e.value.where.startswith(f"{tmp_path / 't.en'}:3")


def test_one_aligned_file_missing(tmp_path):
    (tmp_path / "t.en").write_text("a\n", encoding="utf-8")
    with pytest.raises(LmkError) as e:
        task().read(tmp_path / "t", DataSpec(train=tmp_path / "t"), None)
    assert "t.de not found" in e.value.what


def test_empty_line_in_one_file_is_a_bad_row(tmp_path):
    (tmp_path / "t.en").write_text("a\n\nc\n", encoding="utf-8")
    (tmp_path / "t.de").write_text("A\nB\nC\n", encoding="utf-8")
    with pytest.raises(LmkError) as e:
        task().read(tmp_path / "t", DataSpec(train=tmp_path / "t"), None)
    assert e.value.where == f"{tmp_path / 't.en'} line 2" and "empty line" in e.value.what
    ds = task().read(tmp_path / "t", DataSpec(train=tmp_path / "t", on_bad_rows="skip"), None)
    assert [x.fields["target"] for x in ds.examples] == ["A", "C"]


def test_tsv_and_jsonl_columns(tmp_path):
    tsv = tmp_path / "p.tsv"
    tsv.write_text("en\tde\nhello\thallo\n\tleer\n", encoding="utf-8")
    t = task(source_column="en", target_column="de")
    with pytest.raises(LmkError) as e:
        t.read(tsv, DataSpec(train=tsv), None)
    assert e.value.where == f"{tsv} line 3" and "'en'" in e.value.what
    with pytest.raises(LmkError) as e:
        task().read(tsv, DataSpec(train=tsv), None)  # default columns source/target are not there
    assert "'source'" in e.value.what and "line 1" in e.value.where or "header" in e.value.where
    js = write_jsonl(tmp_path / "p.jsonl", [{"source": "hi", "target": "hallo"}, {"source": "x"}])
    with pytest.raises(LmkError) as e:
        task().read(js, DataSpec(train=js), None)
    assert e.value.where == f"{js} line 2" and "missing key" in e.value.what


@pytest.mark.parametrize("template", ["Translate: {text}", "no placeholder", "{source} {"])
def test_bad_prompt_template(template):
    with pytest.raises(LmkError) as e:
        task(prompt_template=template)
    assert e.value.where == "task.prompt_template"


def test_scores():
    t = task()
    perfect = t.score(["ein Hund läuft im Park"], ["ein Hund läuft im Park"])
    assert perfect["bleu"] == pytest.approx(100) and perfect["chrf"] == pytest.approx(100)
    assert t.score(["völlig anders"], ["ein Hund läuft im Park"])["bleu"] < 5
    s = get_task("summarization").score(["the cat sat"], ["the cat sat on the mat"])
    assert s["rouge1"] == pytest.approx(2 * 1.0 * 0.5 / 1.5) and 0 < s["rougeL"] <= s["rouge1"]


def test_summarization_reads_columns_without_languages(tmp_path):
    js = write_jsonl(tmp_path / "s.jsonl", [{"document": "a long text about cats", "summary": "cats"}])
    t = get_task("summarization", {"source_column": "document", "target_column": "summary"})
    ds = t.read(js, DataSpec(train=js), None)
    assert ds.examples[0].fields["messages"][0]["content"].endswith("a long text about cats")
    from lmkernel.spec import parse_spec

    with pytest.raises(LmkError) as e:  # source_lang belongs to translation only
        parse_spec({"task": {"type": "summarization", "source_lang": "en"}, "data": {"train": str(js)}})
    assert "not an option of task 'summarization'" in e.value.what
