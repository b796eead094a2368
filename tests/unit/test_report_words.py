"""Words in reports: jieba for Chinese, mixed scripts, full-width and traditional forms, and the
words that mark each label (a shortcut in the data shows up)."""

from __future__ import annotations

from lmkernel.evaluation.words import marking_words, marking_words_section, words


def test_words_cut_chinese_with_jieba_and_keep_other_scripts():
    got = words("这家酒店的服务非常好，房间也很干净！iPhone１５ Pro 涨了3.5% 😀")
    assert ["酒店", "服务", "房间", "干净"] == [w for w in got if w in {"酒店", "服务", "房间", "干净"}]
    assert "iphone" in got and "15" in got and "3.5%" in got  # full-width digits folded, numbers whole
    assert not any(ch in "".join(got) for ch in "，！😀")  # punctuation and emoji dropped
    assert "服務" in words("飯店服務很好") or "服" in "".join(words("飯店服務很好"))  # traditional is read, not dropped


def test_marking_words_find_the_shortcut_and_the_sentiment():
    rows = ([("房间干净，服务很好", "pos"), ("非常满意，推荐", "pos"), ("服务很好，下次再来", "pos")] * 6
            + [("携程订的房间太差了", "neg"), ("携程 服务太差，失望", "neg"), ("很失望，不推荐", "neg")] * 6)
    found = marking_words(rows, ["pos", "neg"], k=5)
    neg = [w for w, _ in found["neg"]]
    assert "携程" in neg and "失望" in neg  # the booking site only occurs in negative reviews: a shortcut
    assert all(z > 0 for _, z in found["pos"]) and "携程" not in [w for w, _ in found["pos"]]
    section = marking_words_section(rows, ["pos", "neg"])
    assert section[0].startswith("## Words that mark each label") and any("携程" in line for line in section)


def test_no_words_no_section():
    assert marking_words_section([("!!!", "a"), ("???", "b")], ["a", "b"]) == []
