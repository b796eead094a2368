"""The robustness perturbation generator: deterministic by seed, label-preserving, independent of training."""

from __future__ import annotations

import pytest

from lmkernel.errors import LmkError
from lmkernel.evaluation.perturb import KINDS, perturb
from lmkernel.evaluation.synonyms import EN_SYNONYMS, NEGATIONS_EN, NEGATIONS_ZH, ZH_SYNONYMS

TEXTS = [
    "the film was not good , but the actors were wonderful", "a boring and predictable movie",
    "i didn't like the ending at all", "this hotel is great and the staff were very helpful",
    "服务很好，房间也干净", "电影不好看，非常无聊", "手机没有问题，推荐", "the 房间 was dirty",
]


@pytest.mark.parametrize("kind", KINDS)
def test_same_seed_same_texts_other_seed_other_texts(kind):
    a, b = perturb(TEXTS, kind, seed=3), perturb(TEXTS, kind, seed=3)
    assert a == b
    assert perturb(TEXTS[:3], kind, seed=3) == a[:3]  # a row's perturbation does not depend on the others
    if kind in ("typo", "synonym", "zh_confusable"):  # the random kinds
        assert any(perturb(TEXTS, kind, seed=s) != a for s in range(4, 8))


def _words(text: str) -> list[str]:
    return text.replace(",", " ").split()


@pytest.mark.parametrize("kind", KINDS)
def test_negations_are_never_edited_created_or_removed(kind):
    for seed in range(20):
        for old, new in zip(TEXTS, perturb(TEXTS, kind, seed=seed)):
            if kind in ("zh_traditional", "zh_fullwidth"):
                continue  # whole-text conversions: checked below
            neg_old = [w for w in _words(old) if w in NEGATIONS_EN or w.endswith("n't")]
            neg_new = [w for w in _words(new) if w in NEGATIONS_EN or w.endswith("n't")]
            assert neg_old == neg_new, (old, new)
            assert [c for c in old if c in NEGATIONS_ZH] == [c for c in new if c in NEGATIONS_ZH], (old, new)


def test_typos_edit_words_by_one_character_and_keep_the_word_count():
    new = perturb(TEXTS[:4], "typo", seed=0, rate=1.0)
    for old, got in zip(TEXTS[:4], new):
        assert got != old and len(_words(got)) == len(_words(old))
        for a, b in zip(_words(old), _words(got)):
            assert abs(len(a) - len(b)) <= 1 and a[0] == b[0]


def test_synonyms_come_from_the_shipped_groups():
    for old, new in zip(TEXTS, perturb(TEXTS, "synonym", seed=1, rate=1.0)):
        for a, b in zip(_words(old), _words(new)):
            if a != b and a.isascii():
                assert b in EN_SYNONYMS[a]
    assert perturb(["电影很精彩"], "synonym", seed=0, rate=1.0)[0] != "电影很精彩"
    assert all(ZH_SYNONYMS[w] for w in ZH_SYNONYMS)


def test_chinese_variants():
    assert perturb(["这个电影很好看"], "zh_traditional")[0] == "這個電影很好看"
    assert perturb(["房间 ok!"], "zh_fullwidth")[0] == "房间\u3000ｏｋ！"
    assert perturb(["a plain english text"], "zh_fullwidth")[0] == "a plain english text"  # nothing Chinese
    got = perturb(["服务的态度很好"], "zh_confusable", rate=1.0)[0]
    assert got != "服务的态度很好" and len(got) == len("服务的态度很好")


def test_the_generator_is_not_the_training_augmentations_source():
    """Hand-written tables and zhconv only: no model, embedding or augmentation module is imported."""
    import ast
    from pathlib import Path

    import lmkernel.evaluation.perturb as p

    names = set()
    for path in (Path(p.__file__), Path(p.__file__).with_name("synonyms.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                names.add(("." * node.level) + (node.module or ""))
            elif isinstance(node, ast.Import):
                names.update(a.name for a in node.names)
    assert names <= {"__future__", "random", "re", "zhconv", "..errors", ".synonyms"}, names


def test_bad_kind_and_rate_are_clear_errors():
    with pytest.raises(LmkError, match="unknown perturbation kind 'typos'"):
        perturb(TEXTS, "typos")
    with pytest.raises(LmkError, match="rate 1.5 is outside"):
        perturb(TEXTS, "typo", rate=1.5)
