"""data.document_boundary: a book is not cut into one document per line (issue 21 item 18)."""

import pytest

from lmkernel.errors import LmkError
from lmkernel.pretrain.corpus import CorpusStats, Packing, boundary_used, iter_texts, pack
from lmkernel.spec import DataSpec

BOOK = "First Citizen:\nBefore we proceed,\nhear me speak.\n\nAll:\nSpeak, speak.\n\n\n  \nLast line\n"
EOS = 0


def documents(path, boundary):
    stats = CorpusStats()
    return list(iter_texts([path], "text", "error", stats, boundary)), stats


@pytest.mark.parametrize("boundary,expected", [
    ("line", ["First Citizen:", "Before we proceed,", "hear me speak.", "All:", "Speak, speak.", "Last line"]),
    ("blank_line", ["First Citizen:\nBefore we proceed,\nhear me speak.", "All:\nSpeak, speak.", "Last line"]),
    ("auto", ["First Citizen:\nBefore we proceed,\nhear me speak.", "All:\nSpeak, speak.", "Last line"]),
    ("file", [BOOK.strip()]),
])
def test_documents_and_eos_tokens_per_mode(tmp_path, boundary, expected):
    book = tmp_path / "book.txt"
    book.write_text(BOOK)
    docs, stats = documents(book, boundary)
    assert docs == expected and stats.texts == len(expected)
    encoded = [([ord(c) for c in d], None) for d in docs]
    ids = [i for block in pack(encoded, Packing(1, EOS)) for i in block["input_ids"]]
    assert ids.count(EOS) == len(expected)  # one end-of-text token after each document, none inside


def test_auto_keeps_one_document_per_line_for_a_file_without_paragraphs(tmp_path):
    corpus = tmp_path / "lines.txt"
    corpus.write_text("one doc\nanother doc\r\nthird doc\n")
    docs, stats = documents(corpus, "auto")
    assert docs == ["one doc", "another doc", "third doc"] and stats.boundaries == {"line": 1}
    assert boundary_used("auto", stats) == "auto: line (1 file)"


def test_crlf_and_cr_paragraphs(tmp_path):
    for eol in ("\r\n", "\r"):
        f = tmp_path / "b.txt"
        f.write_bytes(eol.join(["a1", "a2", "", "b1", ""]).encode())
        assert documents(f, "auto")[0] == ["a1\na2", "b1"]


def test_jsonl_rows_are_documents_whatever_the_mode(tmp_path):
    f = tmp_path / "c.jsonl"
    f.write_text('{"text": "row one\\n\\nstill row one"}\n{"text": "row two"}\n')
    for boundary in ("auto", "line", "blank_line", "file"):
        docs, stats = documents(f, boundary)
        assert docs == ["row one\n\nstill row one", "row two"] and stats.boundaries == {"row": 1}


def test_a_bad_line_ends_the_paragraph_it_breaks(tmp_path):
    f = tmp_path / "b.txt"
    f.write_bytes(b"a1\n\xff bad\na2\n\nb1\n")
    stats = CorpusStats()
    assert list(iter_texts([f], "text", "skip", stats, "blank_line")) == ["a1", "a2", "b1"]
    assert stats.bad_count == 1 and stats.bad_lines[0].line == 2
    with pytest.raises(LmkError, match="undecodable"):
        list(iter_texts([f], "text", "error", CorpusStats(), "blank_line"))


def test_very_long_documents_are_cut_at_a_line_break(tmp_path, monkeypatch):
    import lmkernel.pretrain.corpus as corpus

    monkeypatch.setattr(corpus, "MAX_DOC_CHARS", 20)
    f = tmp_path / "b.txt"
    f.write_text("".join(f"line {i:04d}\n" for i in range(6)))
    docs, _ = documents(f, "file")
    assert docs == ["line 0000\nline 0001", "line 0002\nline 0003", "line 0004\nline 0005"]


def test_spec_field_default_and_choices():
    assert DataSpec(train="x.txt").document_boundary == "auto"
    with pytest.raises(Exception, match="document_boundary"):
        DataSpec(train="x.txt", document_boundary="sentence")
