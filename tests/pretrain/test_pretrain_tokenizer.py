"""Tokenizer training: round trips in English and Chinese, no [UNK] floods, HF-format files."""

from __future__ import annotations

from pathlib import Path

import pytest
from pretrain_helpers import ZH, corpus_lines
from transformers import AutoTokenizer

from lmkernel.pretrain.tokenizer import TextEncoder, train_tokenizer

SAMPLE = corpus_lines(300)


def _reload(tok, tmp_path: Path):
    tok.save_pretrained(str(tmp_path))
    return AutoTokenizer.from_pretrained(str(tmp_path), local_files_only=True)


def test_byte_bpe_round_trips_english_and_chinese_and_reloads(tmp_path):
    tok = _reload(train_tokenizer(SAMPLE, "decoder", 400), tmp_path)
    for text in ["the market rose after the news", "股票价格上涨了，房间干净又安静", "never seen: Zürich €5 😀"]:
        ids = tok(text, add_special_tokens=False)["input_ids"]
        assert tok.decode(ids) == text  # byte-level: every text round-trips exactly, no unknown token
    assert tok.eos_token == "<|endoftext|>" and tok.pad_token_id != tok.eos_token_id
    assert len(tok) <= 400


def test_wordpiece_round_trips_and_splits_chinese_into_characters(tmp_path):
    tok = _reload(train_tokenizer(SAMPLE, "encoder", 400, extra_special=["[DOMAIN]"]), tmp_path)
    enc = tok("the market rose")
    assert tok.convert_ids_to_tokens(enc["input_ids"])[0] == "[CLS]"
    assert tok.decode(enc["input_ids"], skip_special_tokens=True) == "the market rose"
    zh = "股票价格上涨了"
    tokens = tok.tokenize(zh)
    assert tokens == list(zh)  # one token per character, none of them [UNK]
    assert "[DOMAIN]" in tok.all_special_tokens and tok.mask_token == "[MASK]"


def test_small_chinese_sample_does_not_flood_unk(tmp_path):
    tok = train_tokenizer(ZH * 10 + SAMPLE, "encoder", 400)
    unseen = "今天股票很好，我们看看房间"  # every character occurs in training text, in other words
    ids = tok(unseen, add_special_tokens=False)["input_ids"]
    assert tok.unk_token_id not in ids


def test_whole_word_starts_follow_wordpiece_and_jieba():
    tok = train_tokenizer(SAMPLE + ["北京大学", "自然语言处理"] * 5, "encoder", 400)
    enc = TextEncoder(tok, whole_words=True)
    (ids, starts), = enc(["我们去北京大学 marketing"])
    tokens = tok.convert_ids_to_tokens(ids)
    marks = dict(zip(tokens, starts))
    assert marks["我"] == 1 and marks["们"] == 0  # 我们 is one jieba word
    assert marks["北"] == 1 and marks["京"] == 0
    assert all(s == 0 for t, s in zip(tokens, starts) if t.startswith("##"))
    assert starts[tokens.index("去")] == 1


@pytest.mark.slow
def test_chnsenticorp_text_is_not_unknown():
    import csv

    path = Path(__file__).resolve().parents[3] / "shared" / "data" / "chnsenticorp" / "train.tsv"
    with open(path, encoding="utf-8") as fh:
        texts = [row["text_a"] for row in csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)]
    tok = train_tokenizer(texts[:8000], "encoder", 8000)
    ids = [i for batch in tok(texts[8000:9000], add_special_tokens=False)["input_ids"] for i in batch]
    share = ids.count(tok.unk_token_id) / len(ids)
    assert share < 0.01, share
