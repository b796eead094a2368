"""CoNLL and JSONL readers of the NER task: formats, tag schemes and every bad-input path."""

from __future__ import annotations

from pathlib import Path

import pytest
from ner_data import make_sentences, write_conll, write_jsonl

from lmkernel.data.conll import read_tagged, tag_problem, to_bio
from lmkernel.errors import LmkError
from lmkernel.spec import DataSpec
from lmkernel.tasks import get_task


def read(path: Path, labels=None, on_bad_rows="error", fmt="auto", **options):
    task = get_task("ner", options)
    return task.read(path, DataSpec(train=path, on_bad_rows=on_bad_rows, format=fmt), labels)


def test_conll_reads_sentences_skips_docstart_and_keeps_lines(tmp_path):
    path = tmp_path / "a.conll"
    path.write_text("-DOCSTART- -X- O O\n\nEU NNP I-NP B-ORG\nrejects VBZ I-VP O\n\n\n"
                    "-DOCSTART- -X- O O\n\nPeter NNP I-NP B-PER\nBlackburn NNP I-NP I-PER", encoding="utf-8")
    ds = read(path)
    assert [e.fields["tokens"] for e in ds.examples] == [["EU", "rejects"], ["Peter", "Blackburn"]]
    assert [e.label for e in ds.examples] == [["B-ORG", "O"], ["B-PER", "I-PER"]]
    assert [e.text for e in ds.examples] == ["EU rejects", "Peter Blackburn"]
    assert [e.line for e in ds.examples] == [3, 9]  # the last sentence has no trailing blank line
    chunk = read(path, tag_column=3)  # the same column counted from the left
    assert [e.label for e in chunk.examples] == [e.label for e in ds.examples]
    np_chunks = read(path, tag_column=2, tag_scheme="iob1")  # another column holds other IOB1 tags
    assert np_chunks.examples[0].label == ["B-NP", "B-VP"]


def test_jsonl_and_conll_give_the_same_examples(tmp_path):
    sents = make_sentences(12)
    a = read(write_conll(tmp_path / "a.conll", sents))
    b = read(write_jsonl(tmp_path / "b.jsonl", sents))
    assert [(e.fields["tokens"], e.label) for e in a.examples] == [(e.fields["tokens"], e.label) for e in b.examples]
    assert [e.line for e in b.examples] == list(range(1, 13))


def test_iob1_becomes_bio():
    iob1 = ["I-PER", "I-PER", "B-PER", "O", "I-LOC", "I-ORG", "I-ORG", "O", "B-MISC"]
    assert to_bio(iob1) == ["B-PER", "I-PER", "B-PER", "O", "B-LOC", "B-ORG", "I-ORG", "O", "B-MISC"]
    bio = ["B-PER", "I-PER", "O", "B-LOC", "B-LOC", "I-LOC"]
    assert to_bio(bio) == bio  # valid BIO is unchanged, so `auto` can always convert


@pytest.mark.parametrize("scheme", ["auto", "iob1"])
def test_iob1_files_read_as_bio(tmp_path, scheme):
    sents = make_sentences(8)
    ds = read(write_conll(tmp_path / "a.conll", sents, iob1=True), tag_scheme=scheme)
    assert [e.label for e in ds.examples] == [g for _, g in sents]


def test_strict_bio_rejects_iob1_with_the_line(tmp_path):
    path = write_conll(tmp_path / "a.conll", make_sentences(4), iob1=True)
    with pytest.raises(LmkError) as e:
        read(path, tag_scheme="bio")
    assert "starts an entity" in e.value.what and "tag_scheme: iob1" in e.value.what
    assert e.value.where == f"{path} line 4"  # DOCSTART, blank, "the", then "hotel" I-PLACE


@pytest.mark.parametrize("tag", ["PER", "B-", "X-PER", "E-PER", "S-LOC", "b-per", "B PER"])
def test_malformed_tag_names_file_and_line(tmp_path, tag):
    path = tmp_path / "a.conll"
    path.write_text(f"the O\nhotel O\n\nJohn\t{tag}\n", encoding="utf-8")
    if " " in tag:  # "B PER" splits into two columns: the last one ("PER") is read as the tag
        tag = tag.split()[-1]
    with pytest.raises(LmkError) as e:
        read(path)
    assert f"malformed tag {tag!r}" in e.value.what and e.value.where == f"{path} line 4"
    assert "on_bad_rows: skip" in e.value.fix


def test_tag_problem_points_at_the_token():
    assert tag_problem(["O", "B-PER", "I-PER"], "bio") is None
    assert tag_problem(["O", "I-PER"], "bio")[0] == 1
    assert tag_problem(["B-PER", "I-LOC"], "bio")[0] == 1
    assert tag_problem(["O", "I-PER"], "iob1") is None


def test_too_few_columns_rejects_the_whole_sentence(tmp_path):
    path = tmp_path / "a.conll"
    path.write_text("the O\nhotel\nwas O\n\nthe O\nfilm B-WORK\n", encoding="utf-8")
    with pytest.raises(LmkError) as e:
        read(path)
    assert "1 column(s)" in e.value.what and e.value.where == f"{path} line 2"
    ds = read(path, on_bad_rows="skip")  # skip drops the sentence (not just the line) and counts it
    assert [e.fields["tokens"] for e in ds.examples] == [["the", "film"]]
    assert [(b.line, "column" in b.reason) for b in ds.bad] == [(2, True)]


def test_tag_column_out_of_range_and_zero(tmp_path):
    path = write_conll(tmp_path / "a.conll", make_sentences(2))  # 3 columns: token X tag
    with pytest.raises(LmkError, match="needs at least 6"):
        read(path, tag_column=5)
    with pytest.raises(LmkError) as e:
        read(path, tag_column=0)
    assert e.value.where == "task.tag_column"


def test_undecodable_bytes_reject_their_sentence(tmp_path):
    path = tmp_path / "a.conll"
    path.write_bytes(b"the O\nhot\xffel B-PLACE\n\nthe O\nfilm B-WORK\n")
    ds = read(path, on_bad_rows="skip")
    assert len(ds.examples) == 1 and ds.bad[0].line == 2 and "UTF-8" in ds.bad[0].reason


@pytest.mark.parametrize("line,reason", [
    ('{"tokens": ["the", "hotel"], "tags": ["O"]}', "2 tokens but 1 tags"),
    ('{"tokens": ["the"], "tags": ["O"]', "invalid JSON"),
    ('{"words": ["the"], "tags": ["O"]}', "missing key(s) ['tokens']"),
    ('["the", "O"]', "expected a JSON object"),
    ('{"tokens": "the hotel", "tags": ["O", "O"]}', "non-empty list of non-empty strings"),
    ('{"tokens": ["the", ""], "tags": ["O", "O"]}', "non-empty list of non-empty strings"),
    ('{"tokens": ["the"], "tags": [0]}', "list of strings"),
    ('{"tokens": ["the"], "tags": ["B-"]}', "malformed tag"),
])
def test_jsonl_bad_rows_name_file_and_line(tmp_path, line, reason):
    path = tmp_path / "a.jsonl"
    path.write_text('{"tokens": ["the", "film"], "tags": ["O", "B-WORK"]}\n\n' + line + "\n", encoding="utf-8")
    with pytest.raises(LmkError) as e:
        read(path)
    assert reason in e.value.what and e.value.where == f"{path} line 3"
    ds = read(path, on_bad_rows="skip")
    assert len(ds.examples) == 1 and [b.line for b in ds.bad] == [3]


def test_unknown_tag_in_held_out_data(tmp_path):
    path = tmp_path / "dev.conll"
    path.write_text("the O\nfilm B-WORK\n\nJohn B-PER\n", encoding="utf-8")
    labels = ["O", "B-WORK", "I-WORK"]
    with pytest.raises(LmkError) as e:
        read(path, labels)
    assert "'B-PER' does not occur in the training data" in e.value.what and e.value.where == f"{path} line 4"
    assert len(read(path, labels, on_bad_rows="skip").examples) == 1


def test_file_errors(tmp_path):
    with pytest.raises(LmkError, match="not found"):
        read(tmp_path / "missing.conll")
    with pytest.raises(LmkError, match="directory"):
        read(tmp_path)
    (tmp_path / "empty.conll").write_text("", encoding="utf-8")
    with pytest.raises(LmkError, match="empty"):
        read(tmp_path / "empty.conll")
    path = write_conll(tmp_path / "a.csv", make_sentences(2))
    with pytest.raises(LmkError) as e:
        read(path, fmt="csv")
    assert e.value.where == "data.format"
    assert len(read(path, fmt="conll").examples) == 2  # any extension reads as CoNLL when told


def test_infer_labels_o_first_and_both_prefixes(tmp_path):
    task = get_task("ner")
    ds = read(write_conll(tmp_path / "a.conll", make_sentences(20)))
    assert task.infer_labels(ds.examples) == ["O", "B-PLACE", "B-WORK", "I-PLACE", "I-WORK"]
    only_o = read(write_conll(tmp_path / "o.conll", [(["the", "film"], ["O", "O"])]))
    with pytest.raises(LmkError, match="no entity tags"):
        task.infer_labels(only_o.examples)


@pytest.mark.slow
def test_conll2003_counts_match_the_readme():
    """The shared CoNLL-2003 copy: IOB1 originals convert to exactly the derived BIO files."""
    root = Path(__file__).resolve().parents[3] / "shared" / "data" / "conll2003"
    bio = read_tagged(root / "train.txt").sentences
    iob1 = read_tagged(root / "eng.train", scheme="iob1").sentences
    assert len(bio) == 14041 and [s.tags for s in bio] == [s.tags for s in iob1]
    entities = sum(t.startswith("B-") for s in bio for t in s.tags)
    assert entities == 23499
