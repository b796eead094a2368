"""Tokenizer training (the ``tokenizers`` library) and the text -> ids step of the corpus stream.

Encoders get WordPiece behind BERT's normalizer with ``handle_chinese_chars``: every CJK character
becomes its own word, so Chinese text is covered character by character instead of falling into
[UNK] (a Chinese "word" between spaces is a whole sentence, which WordPiece could never cover).
Decoders get byte-level BPE: any byte sequence is encodable, so there is no unknown token at all.
Both are saved as ``PreTrainedTokenizerFast`` files, loadable with ``AutoTokenizer.from_pretrained``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

ENCODER_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
DECODER_EOS, DECODER_PAD = "<|endoftext|>", "<|pad|>"
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ffff]")


def train_tokenizer(texts: Iterable[str], arch: str, vocab_size: int, min_frequency: int = 2,
                    extra_special: list[str] | None = None, lowercase: bool = False):
    """A new fast tokenizer for ``arch`` ("encoder": WordPiece, "decoder": byte-level BPE), trained on ``texts``."""
    if arch == "encoder":
        return _wordpiece(texts, vocab_size, min_frequency, extra_special or [], lowercase)
    return _byte_bpe(texts, vocab_size, min_frequency, extra_special or [])


def _wordpiece(texts, vocab_size, min_frequency, extra, lowercase):
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True,
                                                strip_accents=None if not lowercase else True, lowercase=lowercase)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece(prefix="##")
    specials = ENCODER_SPECIALS + [t for t in extra if t not in ENCODER_SPECIALS]
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=specials,
                                        continuing_subword_prefix="##")
    tok.train_from_iterator(texts, trainer)
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]",
        mask_token="[MASK]", additional_special_tokens=specials[5:] or None,
        model_input_names=["input_ids", "token_type_ids", "attention_mask"])


def _byte_bpe(texts, vocab_size, min_frequency, extra):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = [DECODER_EOS, DECODER_PAD] + [t for t in extra if t not in (DECODER_EOS, DECODER_PAD)]
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=DECODER_EOS, eos_token=DECODER_EOS, pad_token=DECODER_PAD,
        additional_special_tokens=specials[2:] or None, model_input_names=["input_ids", "attention_mask"])


def separator_ids(tokenizer: Any, arch: str) -> tuple[int, list[int], list[int]]:
    """(separator between documents, block prefix, block suffix) for this tokenizer."""
    if arch == "encoder":
        return tokenizer.sep_token_id, [tokenizer.cls_token_id], [tokenizer.sep_token_id]
    eos = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.sep_token_id
    return eos, [], []


class TextEncoder:
    """Texts -> (ids, word_starts) without special tokens; word starts only for whole-word masking.

    A token starts a word unless it is a WordPiece continuation (``##``) or a CJK character that
    jieba puts inside a longer word (so 北京大学 is masked as one or two words, not four characters).
    """

    def __init__(self, tokenizer: Any, whole_words: bool):
        self.tokenizer = tokenizer
        self.whole_words = whole_words
        self._jieba = None
        if whole_words:
            self._jieba = _load_jieba()

    def __call__(self, texts: list[str]) -> list[tuple[list[int], list[int] | None]]:
        enc = self.tokenizer(texts, add_special_tokens=False, return_offsets_mapping=self.whole_words,
                             return_attention_mask=False, return_token_type_ids=False, verbose=False)
        if not self.whole_words:
            return [(ids, None) for ids in enc["input_ids"]]
        return [(ids, self.word_starts(text, ids, offsets))
                for text, ids, offsets in zip(texts, enc["input_ids"], enc["offset_mapping"])]

    def word_starts(self, text: str, ids: list[int], offsets: list[tuple[int, int]]) -> list[int]:
        inside: set[int] = set()  # char positions of CJK characters that continue a jieba word
        if _CJK.search(text):
            pos = 0
            for word in self._jieba.cut(text):
                inside.update(i for i in range(pos + 1, pos + len(word)) if _CJK.match(text[i]))
                pos += len(word)
        tokens = self.tokenizer.convert_ids_to_tokens(ids)
        return [0 if tok.startswith("##") or start in inside else 1 for tok, (start, _) in zip(tokens, offsets)]


def _load_jieba():
    try:
        import jieba
    except ImportError as e:
        from ..errors import LmkError

        raise LmkError("task.whole_word_mask needs jieba (Chinese word segmentation), which is not installed",
                       where="task.whole_word_mask", fix="pip install jieba, or set task.whole_word_mask: false") from e
    import logging

    jieba.setLogLevel(logging.WARNING)
    return jieba
