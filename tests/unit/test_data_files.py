"""Data paths and files that are not data: clear LmkErrors, never a traceback or a hang (issue 21 item 5)."""

import os

import pytest

from lmkernel.data.conll import read_tagged
from lmkernel.data.files import data_path, expand_path, open_data
from lmkernel.data.readers import read_rows
from lmkernel.errors import LmkError
from lmkernel.pretrain.corpus import CorpusStats, iter_texts, resolve_files
from lmkernel.spec import load_spec

needs_fifo = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")


def test_nul_in_a_path_is_an_error():
    with pytest.raises(LmkError, match="contains a NUL character") as e:
        data_path("train\x00.csv")
    assert "\x00" not in e.value.where


def test_unknown_user_in_a_path_is_an_error():
    with pytest.raises(LmkError, match="cannot expand '~nosuchuser-lmk'") as e:
        expand_path("~nosuchuser-lmk/train.csv")
    assert "write the path in full" in e.value.fix


def test_home_is_expanded(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "t.csv").write_text("text,label\na,b\n")
    assert data_path("~/t.csv") == tmp_path / "t.csv"
    assert [r.fields for r in read_rows("~/t.csv", ["text"]).rows] == [{"text": "a", "label": "b"}]


def test_directory_and_device_are_refused(tmp_path):
    with pytest.raises(LmkError, match="expected a file, got a directory"):
        data_path(tmp_path)
    with pytest.raises(LmkError, match="is a character device, not a regular file"):
        read_rows(os.devnull, ["text"], "csv")


def test_missing_file_and_a_file_used_as_a_folder(tmp_path):
    (tmp_path / "f").write_text("x")
    for bad in (tmp_path / "none.csv", tmp_path / "f" / "t.csv"):
        with pytest.raises(LmkError, match="data file not found"):
            data_path(bad)


@needs_fifo
def test_fifo_is_refused_by_every_reader_without_blocking(tmp_path):
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    for read in (lambda: read_rows(fifo, ["text"]), lambda: read_tagged(fifo),
                 lambda: resolve_files(fifo, "data.train"), lambda: data_path(fifo)):
        with pytest.raises(LmkError, match="is a FIFO"):
            read()
    with pytest.raises(LmkError, match="is a FIFO"), open_data(fifo):
        pass


@needs_fifo
def test_fifo_in_a_corpus_folder_is_not_read(tmp_path):
    os.mkfifo(tmp_path / "pipe.txt")
    (tmp_path / "a.txt").write_text("one line\n")
    files = resolve_files(tmp_path, "data.train")
    assert files == [tmp_path / "a.txt"]
    assert list(iter_texts(files, "text", "error", CorpusStats())) == ["one line"]


def test_spec_data_path_with_nul_or_unknown_user_is_an_lmk_error(tmp_path):
    spec = tmp_path / "s.yaml"
    spec.write_text('task: {type: classification}\ndata: {train: "t\\0.csv"}\n')
    with pytest.raises(LmkError, match="NUL"):
        load_spec(spec)
    spec.write_text('task: {type: classification}\ndata: {train: "~nosuchuser-lmk/t.csv"}\n')
    with pytest.raises(LmkError, match="no such user"):
        load_spec(spec)
    spec.write_text('task: {type: classification}\ndata: {train: t.csv}\n')
    with pytest.raises(LmkError, match="NUL"):
        load_spec(spec, ["data.validation=v\x00.csv"])
