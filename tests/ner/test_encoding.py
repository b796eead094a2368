"""Sub-word label alignment and sliding windows: every word is labelled exactly once, none is lost."""

from __future__ import annotations

import pytest

from lmkernel.tasks import get_task
from lmkernel.tasks.base import Example
from lmkernel.tasks.ner_text import plan_windows

IGNORE = -100
LABELS = ["O", "B-PER", "I-PER"]


@pytest.fixture(scope="module")
def wordpiece(tmp_path_factory):
    """A tokenizer whose vocab splits 'johnson' into john + ##son (BERT WordPiece)."""
    from transformers import BertTokenizer

    root = tmp_path_factory.mktemp("wp")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "john", "##son", "met", "mary", "a", "##b", "##c", "."]
    (root / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    return BertTokenizer(vocab=str(root / "vocab.txt"), do_lower_case=True)


def example(tokens, tags):
    return Example(" ".join(tokens), tags, "f", 1, {"tokens": tokens})


def test_first_subtoken_carries_the_label(wordpiece):
    feats = get_task("ner").encode([example(["Johnson", "met", "Mary", "."], ["B-PER", "O", "B-PER", "O"])],
                                   wordpiece, LABELS, 32)
    (f,) = feats
    pieces = wordpiece.convert_ids_to_tokens(f["input_ids"])
    assert pieces == ["[CLS]", "john", "##son", "met", "mary", ".", "[SEP]"]
    assert f["labels"] == [IGNORE, 1, IGNORE, 0, 1, 0, IGNORE]


def test_word_the_tokenizer_drops_still_gets_a_position(wordpiece):
    (f,) = get_task("ner").encode([example(["john", "\u200b", "met"], ["B-PER", "I-PER", "O"])], wordpiece, LABELS, 32)
    assert [lab for lab in f["labels"] if lab != IGNORE] == [1, 2, 0]  # the zero-width word became [UNK]


def labelled_words(features):
    return [[lab for lab in f["labels"] if lab != IGNORE] for f in features]


def test_long_sentence_uses_overlapping_windows_not_truncation(wordpiece):
    tokens = ["johnson", "met", "mary"] * 30  # 120 sub-tokens
    tags = ["B-PER", "O", "B-PER"] * 30
    feats = get_task("ner").encode([example(tokens, tags)], wordpiece, LABELS, 32)
    assert len(feats) > 4 and all(len(f["input_ids"]) <= 32 for f in feats)
    flat = [lab for part in labelled_words(feats) for lab in part]
    assert flat == [LABELS.index(t) for t in tags]  # every word once, in order


def test_windows_own_each_word_once_with_context():
    pieces = [1, 2, 1, 3, 1, 1, 2, 1, 1, 1] * 10
    windows = plan_windows(pieces, 16)
    starts = [0]
    for p in pieces:
        starts.append(starts[-1] + p)
    assert windows[0].own_start == 0 and windows[-1].own_end == len(pieces)
    for w, nxt in zip(windows, windows[1:]):
        assert w.own_end == nxt.own_start and nxt.start < w.end  # contiguous shares, overlapping windows
    for w in windows:
        assert starts[w.end] - starts[w.start] <= 16
        assert w.start <= w.own_start <= w.own_end <= w.end
        if w.start > 0:  # not at the sentence start: at least a quarter window of left context
            assert starts[w.own_start] - starts[w.start] >= 16 // 4 - 2
        if w.end < len(pieces):
            assert starts[w.end] - starts[w.own_end] >= 16 // 4 - 2
    assert plan_windows([1, 1, 1], 16) == [type(windows[0])(0, 3, 0, 3)]


def test_window_boundary_avoids_splitting_a_gold_entity():
    pieces = [1] * 40
    free = plan_windows(pieces, 16)
    boundary = free[0].own_end
    tags = ["O"] * 40
    tags[boundary - 1: boundary + 2] = ["B-PER", "I-PER", "I-PER"]  # an entity across the natural boundary
    moved = plan_windows(pieces, 16, tags)
    assert not tags[moved[0].own_end].startswith("I-")
    assert [(w.start, w.end) for w in moved] == [(w.start, w.end) for w in free]


def test_collate_pads_labels_with_ignore():
    task = get_task("ner")
    batch = task.collate([{"input_ids": [2, 5, 3], "labels": [IGNORE, 1, IGNORE]},
                          {"input_ids": [2, 3], "labels": [IGNORE, IGNORE]}], pad_id=0)
    assert batch["input_ids"].tolist() == [[2, 5, 3], [2, 3, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]
    assert batch["labels"].tolist() == [[IGNORE, 1, IGNORE], [IGNORE, IGNORE, IGNORE]]
    assert "labels" not in task.collate([{"input_ids": [2, 3]}], pad_id=0)
