"""The embedding-neighbour synonym source, on the tiny BERT's input-embedding table."""

from __future__ import annotations

import torch

from lmkernel.augment import synonyms
from lmkernel.augment.synonyms import neighbours, table


def test_whole_words_only_no_stop_words_or_punctuation(tiny_bert):
    tab = table(tiny_bert)
    assert {"great", "film", "terrible"} <= set(tab.words)
    assert not {"the", "was", "a", "[CLS]", "[cls]", "[unk]"} & set(tab.words)
    assert all(not w.startswith("##") and any(c.isalpha() for c in w) for w in tab.words)
    assert "电" in tab.words  # single Chinese characters are whole words of a character vocabulary
    assert torch.allclose(tab.unit.norm(dim=1), torch.ones(len(tab.words)))


def test_neighbours_are_the_nearest_by_cosine_and_cached(tiny_bert):
    tab = table(tiny_bert)
    assert table(tiny_bert) is tab  # read once per model
    found = neighbours(tab, ["Great", "film", "not-a-word"], k=3, min_similarity=-1.0)
    assert set(found) == {"great", "film"} and all(len(v) == 3 for v in found.values())
    sims = tab.unit @ tab.unit[tab.index["great"]]
    ranked = [tab.words[i] for i in torch.argsort(sims, descending=True).tolist()
              if tab.words[i] != "great" and not synonyms._related("great", tab.words[i])]
    assert found["great"] == ranked[:3]
    assert neighbours(tab, ["great"], k=3, min_similarity=1.0) == {}  # nothing is that close


def test_inflections_are_not_synonyms():
    assert synonyms._related("film", "films") and synonyms._related("good", "goods")
    assert not synonyms._related("film", "movie") and not synonyms._related("a", "an")
