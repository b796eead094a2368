"""predict: raw text -> words with offsets -> entity spans (English and Chinese), long texts included."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from lmkernel.tasks import get_task
from lmkernel.tasks.ner_text import entity_spans, split_words

LABELS = ["O", "B-PLACE", "B-WORK", "I-PLACE", "I-WORK"]


def test_split_words_english_offsets():
    text = "Mr. Smith  visited the U.S. on 1996-08-22, paid $1,000 (twice) and didn't stay-over."
    words = split_words(text)
    assert all(text[s:e] == w for w, s, e in words)
    assert [w for w, _, _ in words] == ["Mr", ".", "Smith", "visited", "the", "U.S.", "on", "1996-08-22", ",",
                                       "paid", "$", "1,000", "(", "twice", ")", "and", "didn't", "stay-over", "."]


def test_split_words_chinese_is_one_character_per_word():
    text = "我在北京大学读书, 住在Hotel 42号。"
    words = split_words(text)
    assert all(text[s:e] == w for w, s, e in words)
    assert [w for w, _, _ in words] == ["我", "在", "北", "京", "大", "学", "读", "书", ",", "住", "在", "Hotel",
                                       "42", "号", "。"]


def test_entity_spans_are_lenient_like_conlleval():
    assert entity_spans(["B-PER", "I-PER", "O", "B-LOC", "B-LOC", "I-ORG", "I-ORG", "I-PER"]) == [
        ("PER", 0, 2), ("LOC", 3, 4), ("LOC", 4, 5), ("ORG", 5, 7), ("PER", 7, 8)]
    assert entity_spans(["O", "O"]) == []


class KeywordModel(torch.nn.Module):
    """A fake token classifier: a fixed tag per vocabulary id, with known probabilities."""

    def __init__(self, tokenizer, tags: dict[str, tuple[str, float]]):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.table = torch.full((len(tokenizer), len(LABELS)), -20.0)
        self.table[:, 0] = 0.0
        for word, (tag, p) in tags.items():
            (i,) = tokenizer.convert_tokens_to_ids([word])
            self.table[i] = torch.log(torch.tensor([(1 - p) / (len(LABELS) - 1)] * len(LABELS)))
            self.table[i, LABELS.index(tag)] = torch.log(torch.tensor(p))
        self.calls = []

    def forward(self, input_ids, attention_mask):
        self.calls.append(input_ids.shape)
        return SimpleNamespace(logits=self.table[input_ids])


@pytest.fixture()
def tokenizer(tiny_bert):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_bert)


def test_predict_english_and_chinese_offsets_and_scores(tokenizer):
    model = KeywordModel(tokenizer, {"hotel": ("B-PLACE", 0.9), "room": ("I-PLACE", 0.7),
                                     "film": ("B-WORK", 0.8), "电": ("B-WORK", 0.6), "影": ("I-WORK", 0.8)})
    texts = ["The  Hotel room was great, the film too.", "这部电影很好", "", "   "]
    out = get_task("ner").predict(model, tokenizer, texts, LABELS, max_length=64, batch_size=8)
    assert [o["text"] for o in out] == texts
    en, zh, empty, blank = out
    assert [(e["type"], e["text"], e["start"], e["end"]) for e in en["entities"]] == [
        ("PLACE", "Hotel room", 5, 15), ("WORK", "film", 31, 35)]
    assert en["entities"][0]["score"] == pytest.approx((0.9 + 0.7) / 2, abs=1e-4)
    assert [(e["type"], e["text"], e["start"], e["end"]) for e in zh["entities"]] == [("WORK", "电影", 2, 4)]
    assert zh["entities"][0]["score"] == pytest.approx(0.7, abs=1e-4)
    for o in out:
        for e in o["entities"]:
            assert o["text"][e["start"]:e["end"]] == e["text"]
    assert empty["entities"] == [] and blank["entities"] == []


def test_predict_long_text_slides_a_window_instead_of_truncating(tokenizer):
    model = KeywordModel(tokenizer, {"hotel": ("B-PLACE", 0.9), "film": ("B-WORK", 0.9)})
    text = "the hotel was good " + "the room was bad " * 40 + "the film was great"
    (out,) = get_task("ner").predict(model, tokenizer, [text], LABELS, max_length=32, batch_size=4)
    assert [(e["text"], text[e["start"]:e["end"]]) for e in out["entities"]] == [("hotel", "hotel"), ("film", "film")]
    assert out["entities"][1]["start"] == len(text) - len("film was great")
    assert len(model.calls) > 1 and all(shape[1] <= 32 for shape in model.calls)
