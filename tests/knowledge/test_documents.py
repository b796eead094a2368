"""Readers: txt/md/jsonl/csv and folders; every bad input counted with file and line, or an error."""

from __future__ import annotations

import pytest

from lmkernel.errors import LmkError
from lmkernel.knowledge.documents import read_documents


def _tree(tmp_path):
    d = tmp_path / "docs"
    (d / "sub").mkdir(parents=True)
    (d / "a.txt").write_text("Hello world.\n", encoding="utf-8")
    (d / "sub" / "b.md").write_text("# Title\n\nBody.\n", encoding="utf-8")
    (d / "c.jsonl").write_text('{"id": "x1", "text": "first", "lang": "en"}\n\n{"text": "no id"}\n',
                               encoding="utf-8")
    (d / "d.csv").write_text("id,text,tag\nr1,row one,a\nr2,row two,b\n", encoding="utf-8")
    (d / "ignored.bin").write_bytes(b"\x00\x01")
    return d


def test_folder_is_read_recursively_with_ids_and_metadata(tmp_path):
    docs, skips = read_documents([_tree(tmp_path)])
    assert skips == []
    by_id = {d.doc_id: d for d in docs}
    assert set(by_id) == {"a.txt", "b.md", "x1", "c.jsonl:3", "r1", "r2"}
    assert by_id["x1"].meta == {"lang": "en"} and by_id["x1"].named and by_id["x1"].line == 1
    assert by_id["r2"].meta == {"tag": "b"} and by_id["r2"].line == 3
    assert not by_id["c.jsonl:3"].named and by_id["a.txt"].text == "Hello world.\n"


def test_configurable_fields(tmp_path):
    f = tmp_path / "q.jsonl"
    f.write_text('{"qid": 7, "body": "text here", "cat": "x"}\n', encoding="utf-8")
    docs, _ = read_documents([f], text_field="body", id_field="qid")
    assert docs[0].doc_id == "7" and docs[0].text == "text here" and docs[0].meta == {"cat": "x"}


def _bad_tree(tmp_path):
    d = tmp_path / "bad"
    d.mkdir()
    (d / "empty.txt").write_text("  \n", encoding="utf-8")
    (d / "binary.txt").write_bytes(b"abc\x00def")
    (d / "latin.txt").write_bytes(b"ok line\nsecond \xe9t\xe9\n")
    (d / "huge.txt").write_text("x" * 2000, encoding="utf-8")
    rows = '{"id": "a", "text": "fine"}\n{broken\n[1]\n{"id": "b"}\n{"id": "a", "text": "dup"}\n'
    (d / "rows.jsonl").write_text(rows, encoding="utf-8")
    (d / "table.csv").write_text("title,body\nx,y\n", encoding="utf-8")
    return d


def test_bad_inputs_are_counted_with_file_and_line(tmp_path):
    docs, skips = read_documents([_bad_tree(tmp_path)], max_bytes=1000)
    assert [d.doc_id for d in docs] == ["a"]
    got = {(s.file.rsplit("/", 1)[-1], s.line): s.reason for s in skips}
    assert "binary" in got[("binary.txt", None)] and "empty" in got[("empty.txt", None)]
    assert "not UTF-8" in got[("latin.txt", 2)] and "cap" in got[("huge.txt", None)]
    assert "not valid JSON" in got[("rows.jsonl", 2)] and "object" in got[("rows.jsonl", 3)]
    assert "no text" in got[("rows.jsonl", 4)] and "repeated" in got[("rows.jsonl", 5)]
    assert "no column 'text'" in got[("table.csv", 1)]
    assert len(skips) == 9


def test_on_bad_error_names_the_file_and_line(tmp_path):
    f = tmp_path / "rows.jsonl"
    f.write_text('{"text": "ok"}\n{broken\n', encoding="utf-8")
    with pytest.raises(LmkError, match="not valid JSON") as e:
        read_documents([f], on_bad="error")
    assert e.value.where == f"{f}:2"
    with pytest.raises(LmkError, match="on_bad"):
        read_documents([f], on_bad="ignore")


def test_missing_paths_and_unknown_types_are_errors(tmp_path):
    with pytest.raises(LmkError, match="no such file"):
        read_documents([tmp_path / "nope"])
    (tmp_path / "x.pdf").write_bytes(b"%PDF")
    with pytest.raises(LmkError, match="not a document type"):
        read_documents([tmp_path / "x.pdf"])
