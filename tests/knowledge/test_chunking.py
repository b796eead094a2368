"""Chunking: paragraphs while they fit, then sentences (English and Chinese), overlap, line numbers."""

from __future__ import annotations

from lmkernel.knowledge.chunking import HAN_COST, chunk_document, cost, pack, units
from lmkernel.knowledge.documents import Document


def test_short_paragraphs_pack_together_and_keep_lines():
    text = "First para.\n\nSecond para.\n\n\nThird para."
    chunks = chunk_document(Document("f.md", text, "f.md"), chunk_chars=500, overlap=0)
    assert len(chunks) == 1 and chunks[0].text == text and chunks[0].line == 1
    small = chunk_document(Document("f.md", text, "f.md"), chunk_chars=20, overlap=0)
    assert [c.text for c in small] == ["First para.", "Second para.", "Third para."]
    assert [c.line for c in small] == [1, 3, 6]
    assert [c.source for c in small] == ["f.md:1", "f.md:3", "f.md:6"]
    assert [c.chunk_id for c in small] == ["f.md#0", "f.md#1", "f.md#2"]


def test_long_english_paragraph_splits_at_sentences_with_overlap():
    sentences = [f"Sentence {i} says a thing." for i in range(12)]
    spans = pack(" ".join(sentences), chunk_chars=80, overlap=30)
    texts = [" ".join(sentences)[a:b].strip() for a, b in spans]
    assert all(cost(t) <= 80 for t in texts)
    assert all(t.endswith(".") for t in texts)  # cut at sentence ends, never mid-sentence
    for prev, nxt in zip(texts, texts[1:]):  # the next chunk repeats the previous one's last sentence
        assert nxt.startswith(prev.rsplit(". ", 1)[-1].rstrip(".")) or nxt.split(". ")[0] in prev
    assert texts[0].startswith("Sentence 0") and texts[-1].endswith("Sentence 11 says a thing.")


def test_chinese_sentences_split_at_full_width_marks():
    text = "今天天气很好。我们去公园吧！你觉得呢？好的；走吧…" * 3
    spans = units(text, budget=30)
    pieces = [text[a:b] for a, b in spans]
    assert pieces[:5] == ["今天天气很好。", "我们去公园吧！", "你觉得呢？", "好的；", "走吧…"]
    assert "".join(pieces) == text


def test_han_characters_cost_more():
    assert cost("abc") == 3 and cost("中文") == 2 * HAN_COST
    zh = "这是一个很长的句子，它没有任何句号" * 10  # no sentence end: cut by characters
    chunks = chunk_document(Document("z", zh, "z.txt"), chunk_chars=60, overlap=0)
    assert all(cost(c.text) <= 60 for c in chunks) and "".join(c.text for c in chunks) == zh


def test_record_documents_keep_their_row_line_and_id_as_source():
    doc = Document("faq-7", "Line one.\nLine two.", "faq.jsonl", line=7, named=True, own_lines=False)
    chunks = chunk_document(doc, chunk_chars=12, overlap=0)
    assert [c.line for c in chunks] == [7, 7] and {c.source for c in chunks} == {"faq-7"}
