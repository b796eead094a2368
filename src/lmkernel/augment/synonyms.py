"""An offline synonym source: nearest neighbours in an encoder's input-embedding table.

EDA draws synonyms from WordNet, which is a download (and English only). The encoder being fine-tuned
already holds a vector per vocabulary piece; pieces that are whole words and lie close by cosine are
near-synonyms or close relatives, for every language its vocabulary covers, with nothing to fetch.
Only whole-word pieces take part (no ``##`` continuations), and stop words, punctuation and digits
never do. The table is read once per model and process.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .words import is_han, is_stop_word

_TABLES: dict[str, _Table] = {}  # per resolved model path: the whole-word table, read once


@dataclass
class _Table:
    words: list[str]  # lower-cased whole words, one per row of ``unit``
    index: dict[str, int]
    unit: Any  # torch float32 [n, dim], rows of length 1
    found: dict[tuple[str, int, float], list[str]] = field(default_factory=dict)


def _whole_word(piece: str, wordpiece: bool) -> str | None:
    """The word a vocabulary piece spells when it is a whole word, else None."""
    if wordpiece:
        word = None if piece.startswith("##") else piece
    elif piece[:1] in ("▁", "Ġ"):  # SentencePiece / byte-level BPE mark a word's start
        word = piece[1:]
    else:
        return None
    if not word or not all(unicodedata.category(c).startswith("L") for c in word):
        return None  # punctuation, digits, symbols, byte pieces
    if len(word) < 2 and not is_han(word):
        return None
    return None if is_stop_word(word.lower()) else word.lower()


def _read_table(model_path: Path) -> _Table:
    import torch
    from transformers import AutoModel

    from ..models.quiet import quiet_libraries
    from ..models.resolve import load_tokenizer

    tokenizer = load_tokenizer(model_path)
    vocab = tokenizer.get_vocab()
    backend = getattr(tokenizer, "backend_tokenizer", None)
    wordpiece = (type(backend.model).__name__ == "WordPiece" if backend is not None
                 else any(p.startswith("##") for p in vocab))
    special = set(tokenizer.all_special_tokens)
    rows: dict[str, int] = {}
    for piece, i in sorted(vocab.items(), key=lambda kv: kv[1]):
        word = None if piece in special else _whole_word(piece, wordpiece)
        if word is not None and word not in rows:
            rows[word] = i
    ids = torch.tensor(list(rows.values()), dtype=torch.long)
    weight = _embedding_tensor(model_path)
    if weight is None:
        with quiet_libraries():
            weight = AutoModel.from_pretrained(model_path, dtype=torch.float32).get_input_embeddings().weight
    vectors = weight.detach()[ids].float().clone()
    unit = torch.nn.functional.normalize(vectors, dim=1)
    words = list(rows)
    return _Table(words, {w: k for k, w in enumerate(words)}, unit)


def _embedding_tensor(model_path: Path):
    """The input-embedding matrix read alone from the checkpoint's safetensors (a large LM need not load
    whole); None when no tensor is named like one."""
    from safetensors import safe_open

    for file in sorted(model_path.glob("*.safetensors")):
        with safe_open(str(file), framework="pt") as f:
            names = [k for k in f.keys() if k.endswith(("word_embeddings.weight", "embed_tokens.weight"))]
            if names:
                return f.get_tensor(sorted(names, key=len)[0])
    return None


def table(model_ref: str | Path) -> _Table:
    """The whole-word embedding table of a model (alias, run or folder), cached per model."""
    from ..models.resolve import resolve_model_path

    path = Path(resolve_model_path(str(model_ref)))
    key = str(path.resolve())
    if key not in _TABLES:
        _TABLES[key] = _read_table(path)
    return _TABLES[key]


def _related(a: str, b: str) -> bool:
    """Inflections of one stem (film/films, good/goods) are neighbours but barely change a text."""
    short, long_ = sorted((a, b), key=len)
    return len(short) >= 3 and long_.startswith(short[:-1]) and len(long_) - len(short) <= 3


def neighbours(tab: _Table, words: list[str], k: int, min_similarity: float) -> dict[str, list[str]]:
    """Up to ``k`` synonyms per word (lower-cased) found in the table, best first; words not in it are absent."""
    import torch

    wanted = sorted({w.lower() for w in words if w.lower() in tab.index})
    todo = [w for w in wanted if (w, k, min_similarity) not in tab.found]
    for start in range(0, len(todo), 512):
        chunk = todo[start:start + 512]
        query = tab.unit[[tab.index[w] for w in chunk]]
        sims = query @ tab.unit.T
        top = torch.topk(sims, min(k * 3 + 1, sims.shape[1]), dim=1)
        for w, values, rows in zip(chunk, top.values.tolist(), top.indices.tolist()):
            found = [tab.words[r] for v, r in zip(values, rows)
                     if v >= min_similarity and tab.words[r] != w and not _related(w, tab.words[r])]
            tab.found[(w, k, min_similarity)] = found[:k]
    return {w: tab.found[(w, k, min_similarity)] for w in wanted if tab.found[(w, k, min_similarity)]}
