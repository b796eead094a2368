"""Vocabulary adaptation: teach an existing WordPiece encoder the characters its corpus needs.

An English WordPiece vocabulary maps most Chinese characters to [UNK], and no amount of fine-tuning
recovers what [UNK] erased. ``extend_tokenizer`` adds the corpus's unknown characters (as words and
as ``##`` continuations, so any word made of them encodes) in order of frequency, and folds
full-width forms to half-width first (NFKC) so ``Ｈｅｌｌｏ`` reads as ``hello``. The model's
embedding matrix then grows with transformers' mean resizing (new rows drawn around the old rows'
mean and covariance), and continued MLM on the corpus teaches the new rows their meaning.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..errors import LmkError


@dataclass
class Extension:
    """What adaptation did, for the log and the report."""

    added: int
    unk_before: float  # share of the scanned corpus's tokens that were [UNK] before
    unk_after: float
    scanned_texts: int
    examples: list[str]


def _backend(tokenizer: Any):
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None or type(backend.model).__name__ != "WordPiece":
        kind = type(backend.model).__name__ if backend is not None else type(tokenizer).__name__
        raise LmkError(f"tokenizer.extend adapts WordPiece (BERT-style) tokenizers; this model's is {kind}",
                       where="tokenizer.extend",
                       fix="byte-level BPE and SentencePiece tokenizers have no unknown characters to add: "
                       "drop tokenizer.extend and continue pretraining as is")
    return backend


def unk_share(tokenizer: Any, texts: list[str]) -> float:
    """The share of tokens (no special tokens) that are the unknown token."""
    unk = tokenizer.unk_token_id
    total = hit = 0
    for start in range(0, len(texts), 512):
        for ids in tokenizer(texts[start:start + 512], add_special_tokens=False, verbose=False)["input_ids"]:
            total += len(ids)
            hit += sum(i == unk for i in ids)
    return hit / total if total else 0.0


def _fold_full_width(backend) -> None:
    from tokenizers import normalizers

    current = backend.normalizer
    if current is None:
        backend.normalizer = normalizers.NFKC()
    elif "NFKC" not in repr(current):
        backend.normalizer = normalizers.Sequence([normalizers.NFKC(), current])


def missing_pieces(tokenizer: Any, texts: Iterable[str]) -> Counter:
    """How often each character of the corpus's unknown words occurs, as the piece it needs:
    ``c`` at a word's start, ``##c`` inside it."""
    backend = _backend(tokenizer)
    vocab = backend.get_vocab()
    prefix, unk = backend.model.continuing_subword_prefix, backend.model.unk_token
    counts: Counter = Counter()
    for text in texts:
        normalized = backend.normalizer.normalize_str(text) if backend.normalizer else text
        for word, _ in backend.pre_tokenizer.pre_tokenize_str(normalized):
            if word in vocab or all(t.value != unk for t in backend.model.tokenize(word)):
                continue
            for i, ch in enumerate(word):
                piece = ch if i == 0 else prefix + ch
                if piece not in vocab:
                    counts[piece] += 1
    return counts


def extend_tokenizer(tokenizer: Any, texts: list[str], min_frequency: int, max_new: int) -> tuple[Any, Extension]:
    """A copy of ``tokenizer`` whose vocabulary also holds the corpus's missing characters."""
    from tokenizers import models

    before = unk_share(tokenizer, texts)
    tok = _plain_copy(tokenizer)
    backend = _backend(tok)
    _fold_full_width(backend)
    counts = missing_pieces(tok, texts)
    new = [p for p, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if n >= min_frequency][:max_new]
    if new:
        old = backend.model
        vocab = dict(backend.get_vocab(with_added_tokens=False))
        _check_added_tokens(tok, len(vocab))
        for piece in new:
            vocab.setdefault(piece, len(vocab))
        backend.model = models.WordPiece(vocab=vocab, unk_token=old.unk_token,
                                         max_input_chars_per_word=old.max_input_chars_per_word,
                                         continuing_subword_prefix=old.continuing_subword_prefix)
    after = unk_share(tok, texts)
    shown = [p for p in new if not p.startswith(backend.model.continuing_subword_prefix)][:12]
    return tok, Extension(len(new), before, after, len(texts), shown)


def _plain_copy(tokenizer: Any):
    """A ``PreTrainedTokenizerFast`` over a copy of the backend: model classes such as transformers 5's
    ``BertTokenizer`` rebuild their normalizer from their config on load, which would drop the NFKC
    step; the plain class saves and loads ``tokenizer.json`` exactly as it is."""
    import copy

    from transformers import PreTrainedTokenizerFast

    _backend(tokenizer)
    specials = {k: getattr(tokenizer, k) for k in ("unk_token", "pad_token", "cls_token", "sep_token", "mask_token",
                                                    "bos_token", "eos_token") if getattr(tokenizer, k, None)}
    return PreTrainedTokenizerFast(tokenizer_object=copy.deepcopy(tokenizer.backend_tokenizer),
                                   model_max_length=tokenizer.model_max_length,
                                   model_input_names=list(tokenizer.model_input_names), **specials)


def _check_added_tokens(tok: Any, base: int) -> None:
    """Added tokens above the vocabulary would collide with the new pieces' ids: refuse, never corrupt."""
    above = sorted(t for t, i in tok.get_added_vocab().items() if i >= base)
    if above:
        raise LmkError(f"the tokenizer has added tokens above its vocabulary ({', '.join(above[:5])}), whose ids "
                       "the new pieces would take", where="tokenizer.extend",
                       fix="extend a tokenizer without added tokens, or drop tokenizer.extend")


def resize_embeddings(model: Any, vocab_size: int) -> int:
    """Grow the input (and tied output) embeddings to ``vocab_size``; returns how many rows were added."""
    current = model.get_input_embeddings().weight.shape[0]
    if vocab_size <= current:
        return 0
    model.resize_token_embeddings(vocab_size, mean_resizing=True)
    return vocab_size - current
