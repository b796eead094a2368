"""EDA operations on English and Chinese text: deterministic, label-preserving, counted per operation."""

from __future__ import annotations

import random

import pytest

from lmkernel.augment.eda import (
    apply_op,
    augment_examples,
    random_deletion,
    random_insertion,
    random_swap,
    synonym_replacement,
)
from lmkernel.augment.words import join_words, split_words
from lmkernel.tasks.base import Example

EN = "the hotel room was clean and the staff were friendly ."
ZH = "这家酒店的房间很干净，服务员也很热情。"
SYN = {"hotel": ["inn"], "clean": ["tidy", "spotless"], "friendly": ["kind"], "房间": ["客房"], "干净": ["整洁"]}
OPS = ["synonym", "insert", "swap", "delete"]


def _rows() -> list[Example]:
    return [Example(EN, "positive", "f.csv", 2), Example(ZH, "positive", "f.csv", 3),
            Example("the film was dull", "negative", "f.csv", 4)]


def test_chinese_is_cut_into_words_and_rejoined_without_spaces():
    words = split_words(ZH)
    assert "房间" in words and "干净" in words
    assert join_words(words) == ZH
    assert join_words(split_words(EN)) == EN
    assert join_words(["酒店", "very", "good", "。"]) == "酒店very good。"


@pytest.mark.parametrize("text", [EN, ZH])
def test_synonym_replacement_only_swaps_known_words(text):
    words = split_words(text)
    out = synonym_replacement(words, 2, SYN, random.Random(0))
    assert len(out) == len(words) and out != words
    changed = [(a, b) for a, b in zip(words, out) if a != b]
    assert all(b in SYN[a] for a, b in changed)


@pytest.mark.parametrize("text", [EN, ZH])
def test_insertion_adds_synonyms_of_words_in_the_text(text):
    words = split_words(text)
    out = random_insertion(words, 2, SYN, random.Random(1))
    assert len(out) == len(words) + 2
    extra = list(out)
    for w in words:
        extra.remove(w)
    assert all(any(e in SYN[w] for w in words if w in SYN) for e in extra)
    assert random_insertion(["no", "synonyms"], 3, SYN, random.Random(1)) == ["no", "synonyms"]


@pytest.mark.parametrize("text", [EN, ZH])
def test_swap_keeps_the_words_and_leaves_punctuation_in_place(text):
    words = split_words(text)
    out = random_swap(words, 2, random.Random(2))
    assert sorted(out) == sorted(words) and out != words
    assert [i for i, w in enumerate(out) if w in "，。."] == [i for i, w in enumerate(words) if w in "，。."]


@pytest.mark.parametrize("text", [EN, ZH])
def test_deletion_drops_words_never_punctuation_and_keeps_one(text):
    words = split_words(text)
    out = random_deletion(words, 0.3, random.Random(3))
    assert len(out) < len(words) and all(w in words for w in out)
    assert sum(w in "，。." for w in out) == sum(w in "，。." for w in words)
    assert len([w for w in random_deletion(words, 1.0, random.Random(3)) if w not in "，。."]) == 1


def test_augment_is_deterministic_keeps_labels_and_counts_rows_per_op():
    rows = _rows()
    added, counts = augment_examples(rows, OPS, 0.2, 8, SYN, seed=7)
    again, _ = augment_examples(rows, OPS, 0.2, 8, SYN, seed=7)
    other, _ = augment_examples(rows, OPS, 0.2, 8, SYN, seed=8)
    assert [a.text for a in added] == [a.text for a in again]
    assert [a.text for a in added] != [a.text for a in other]
    assert sum(counts.values()) == len(added) and set(counts) == set(OPS)
    assert all(counts[op] == sum(a.fields["augmented"] == op for a in added) for op in OPS)
    by_line = {r.line: r for r in rows}
    for a in added:
        assert a.label == by_line[a.line].label and a.text != by_line[a.line].text
    assert len(added) <= 8 * len(rows) and len({(a.line, a.text) for a in added}) == len(added)
    assert any(a.line == 3 for a in added) and any(a.line == 2 for a in added)  # Chinese and English both grow


def test_unknown_op_is_a_programming_error():
    with pytest.raises(ValueError, match="unknown augmentation op"):
        apply_op("shout", ["a", "b"], 0.1, {}, random.Random(0))
