"""Named-entity recognition: one BIO tag per word, entities as typed character spans.

Words are the unit everywhere: data files hold one tag per word, the model predicts on each
word's first sub-token (its last with a decoder's tokenizer: ``_windows``; the other sub-tokens are
-100 and ignored by the loss), and ``predict`` splits raw text into words with character offsets
and reports entity spans over them. Sentences longer than ``max_length`` are cut into overlapping
windows, never truncated; each word is predicted by the window where it has the most context
(``ner_text.plan_windows``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field

from ..data.batching import eval_batches
from ..data.conll import read_tagged
from ..errors import LmkError
from .base import Batch, Dataset, Example, Feature, TaskInfo, TaskOptions, no_grad
from .classification import check_bad_rows
from .ner_text import Window, entity_spans, plan_windows, spaced_words, split_words

IGNORE = -100


class Options(TaskOptions):
    type: Literal["ner"] = "ner"
    tag_column: int = Field(-1, description="CoNLL files: column holding the tag (0-based; -1 = last).")
    tag_scheme: Literal["auto", "bio", "iob1"] = Field(
        "auto", description="Tag scheme of the files (auto: IOB1 if an I- tag starts an entity, else BIO).")


class NerTask:
    name: ClassVar[str] = "ner"
    auto_model: ClassVar[str] = "AutoModelForTokenClassification"

    def __init__(self, options: Any = None) -> None:
        self.options = options
        self.tag_column = getattr(options, "tag_column", -1)
        self.tag_scheme = getattr(options, "tag_scheme", "auto")

    # ---------------------------------------------------------------- data
    def read(self, path: Path, data: Any, labels: list[str] | None) -> Dataset:
        result = read_tagged(path, data.format, self.tag_column, self.tag_scheme,
                             set(labels) if labels is not None else None)
        check_bad_rows(result.bad, data.on_bad_rows, str(path))
        examples = [Example(" ".join(s.tokens), s.tags, str(path), s.line, {"tokens": s.tokens})
                    for s in result.sentences]
        return Dataset(examples, result.bad)

    def infer_labels(self, examples: list[Example]) -> list[str]:
        """``O`` then ``B-``/``I-`` of every entity type in train, sorted (both prefixes even when
        train only shows one, so held-out data is not rejected for a prefix it happens to use)."""
        types = sorted({t[2:] for e in examples for t in e.label if t != "O"})
        if not types:
            raise LmkError("the training data has no entity tags (every tag is O)",
                           where=examples[0].file if examples else "data.train",
                           fix="check task.tag_column: it should point at the NER column (default -1 = last)")
        return ["O"] + sorted(f"{p}-{t}" for t in types for p in "BI")

    def build_model(self, path: Path, labels: list[str]):
        from transformers import AutoModelForTokenClassification

        from ..models.decoder_heads import head_kwargs
        from ..models.resolve import load_pretrained

        return load_pretrained(
            AutoModelForTokenClassification, path, num_labels=len(labels),
            id2label=dict(enumerate(labels)), label2id={lab: i for i, lab in enumerate(labels)}, **head_kwargs(path),
        )

    # ---------------------------------------------------------------- encoding
    def encode(self, examples: list[Example], tokenizer, labels: list[str], max_length: int) -> list[Feature]:
        from ..models.decoder_heads import ensure_pad_token

        ensure_pad_token(tokenizer)  # a decoder's tokenizer may have none; the artifact saves the one chosen
        index = {lab: i for i, lab in enumerate(labels)}
        features: list[Feature] = []
        marked = marks_word_starts(tokenizer)
        planned = _windows(tokenizer, [e.fields["tokens"] for e in examples], max_length, [e.label for e in examples],
                           marked)
        for position, (e, (words, ids, first, windows)) in enumerate(zip(examples, planned)):
            for w, wids, wfirst in _window_inputs(tokenizer, words, ids, first, windows, max_length, marked):
                lab = [IGNORE] * len(wids)
                for word in range(w.own_start, w.own_end):
                    pos = wfirst.get(word)
                    if pos is not None:
                        lab[pos] = index.get(e.label[word], IGNORE)
                features.append({"input_ids": wids, "labels": lab, "example": position})  # its sentence
        return features

    def collate(self, features: list[Feature], pad_id: int) -> Batch:
        import torch

        width = max(len(f["input_ids"]) for f in features)
        ids = torch.full((len(features), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(features), width), dtype=torch.long)
        has_labels = "labels" in features[0]
        lab = torch.full((len(features), width), IGNORE, dtype=torch.long)
        for i, f in enumerate(features):
            n = len(f["input_ids"])
            ids[i, :n] = torch.tensor(f["input_ids"])
            mask[i, :n] = 1
            if has_labels:
                lab[i, :n] = torch.tensor(f["labels"])
        batch = {"input_ids": ids, "attention_mask": mask}
        if has_labels:
            batch["labels"] = lab
        return batch

    # ---------------------------------------------------------------- evaluation
    def step_outputs(self, out, batch: Batch) -> dict[str, list]:
        """Per window (= per sentence unless it was longer than max_length): the predicted and
        gold tag ids of the words it owns, in word order."""
        pred = out.logits.argmax(-1).cpu()
        gold = batch["labels"].cpu()
        keep = gold != IGNORE
        return {"pred": [p[k].tolist() for p, k in zip(pred, keep)],
                "gold": [g[k].tolist() for g, k in zip(gold, keep)]}

    def metrics(self, outputs: dict[str, list], labels: list[str]) -> dict[str, Any]:
        from ..evaluation.ner_metrics import ner_metrics

        def named(seqs: list[list[int]]) -> list[list[str]]:
            return [[labels[i] for i in s] for s in seqs]

        return ner_metrics(named(outputs.get("gold", [])), named(outputs.get("pred", [])))

    # ---------------------------------------------------------------- prediction
    @no_grad
    def predict(self, model, tokenizer, texts: list[str], labels: list[str], *,
                max_length: int, batch_size: int) -> list[dict[str, Any]]:
        """Entities of each raw text: ``{"text", "entities": [{"type", "text", "start", "end", "score"}]}``
        with character offsets into the text and the mean probability of the entity's words."""
        import torch

        from ..models.decoder_heads import batch_pad_id

        model.eval()
        device = next(model.parameters()).device
        words = [split_words(t) for t in texts]
        feats: list[Feature] = []
        owners: list[tuple[int, dict[int, int]]] = []  # (text, word -> position) of each window
        tokens = [[w for w, _, _ in ws] for ws in words]
        nonempty = [i for i, ws in enumerate(tokens) if ws]
        marked = marks_word_starts(tokenizer)
        planned = _windows(tokenizer, [tokens[i] for i in nonempty], max_length, None, marked)
        for i, (ws, ids, first, windows) in zip(nonempty, planned):
            for w, wids, wfirst in _window_inputs(tokenizer, ws, ids, first, windows, max_length, marked):
                feats.append({"input_ids": wids})
                owners.append((i, {k: v for k, v in wfirst.items() if w.own_start <= k < w.own_end}))
        tag = [["O"] * len(ws) for ws in words]
        prob = [[0.0] * len(ws) for ws in words]
        pad = batch_pad_id(model, tokenizer)
        for idx in eval_batches([len(f["input_ids"]) for f in feats], batch_size):
            batch = {k: v.to(device) for k, v in self.collate([feats[j] for j in idx], pad).items()}
            probs = torch.softmax(model(**batch).logits.float(), -1).cpu()
            best_p, best = probs.max(-1)
            for row, j in enumerate(idx):
                text_i, positions = owners[j]
                for word, pos in positions.items():
                    tag[text_i][word] = labels[int(best[row, pos])]
                    prob[text_i][word] = float(best_p[row, pos])
        return [{"text": text, "entities": _entities(text, ws, tag[i], prob[i])}
                for i, (text, ws) in enumerate(zip(texts, words))]


def _entities(text: str, words: list[tuple[str, int, int]], tags: list[str], probs: list[float]) -> list[dict]:
    out = []
    for kind, a, b in entity_spans(tags):
        start, end = words[a][1], words[b - 1][2]
        out.append({"type": kind, "text": text[start:end], "start": start, "end": end,
                    "score": sum(probs[a:b]) / (b - a)})
    return out


def marks_word_starts(tokenizer) -> bool:
    """Whether words encoded one by one lose the word-start mark they carry in running text, and a leading
    space gives it back: byte-level BPE and SentencePiece decoders (Llama, Qwen2, Gemma), whose pretraining
    saw "Ġworld" / "▁world" where a bare "world" is another token. Encoder tokenizers read both alike."""
    probe = ["hello", "world", "again"]

    def ids(words, **kw) -> list[int]:
        return tokenizer(words, add_special_tokens=False, **kw)["input_ids"]

    text = ids(" ".join(probe))
    if ids(probe, is_split_into_words=True) == text:
        return False
    return ids(spaced_words(probe), is_split_into_words=True) == text


def _windows(tokenizer, sentences: list[list[str]], max_length: int, tags: list[list[str]] | None = None,
             marked: bool = False) -> list[tuple[list[str], list[int], dict[int, int], list[Window]]]:
    """For each sentence: its words, its input ids (with special tokens), word -> the position of the
    sub-token that carries its tag, and the windows that cover it. Words the tokenizer drops entirely
    (zero-width characters) become its unknown token, so every word keeps a position and a tag.

    ``marked`` (``marks_word_starts``: a decoder's tokenizer): the words carry their leading spaces, so
    they encode as in running text, and the tag sits on a word's last sub-token, the first one that has
    seen all of the word through causal attention (" 1996" is "▁", "1", "9", "9", "6" for Gemma)."""
    width = max(max_length - tokenizer.num_special_tokens_to_add(pair=False), 1)
    out = []
    for start in range(0, len(sentences), 1024):
        chunk = [spaced_words(s) if marked else list(s) for s in sentences[start:start + 1024]]
        enc = tokenizer(chunk, is_split_into_words=True, truncation=False)
        for k, words in enumerate(chunk):
            word_ids = enc.word_ids(k)
            if len({w for w in word_ids if w is not None}) < len(words):
                seen = {w for w in word_ids if w is not None}
                words[:] = [w if i in seen else (tokenizer.unk_token or w) for i, w in enumerate(words)]
                one = tokenizer(words, is_split_into_words=True, truncation=False)
                ids, word_ids = one["input_ids"], one.word_ids()
            else:
                ids = enc["input_ids"][k]
            pieces = [0] * len(words)
            for w in word_ids:
                if w is not None:
                    pieces[w] += 1
            first = _tag_positions(word_ids, 0, marked)
            windows = plan_windows(pieces, width, tags[start + k] if tags is not None else None)
            out.append((words, ids, first, windows))
    return out


def _tag_positions(word_ids: list[int | None], offset: int, last: bool) -> dict[int, int]:
    """word (+ offset) -> the position of its first sub-token, or of its last one with ``last``."""
    positions: dict[int, int] = {}
    for pos, word in enumerate(word_ids):
        if word is not None and (last or word + offset not in positions):
            positions[word + offset] = pos
    return positions


def _window_inputs(tokenizer, words: list[str], ids: list[int], first: dict[int, int], windows: list[Window],
                   max_length: int, marked: bool = False):
    """(window, input ids, word -> position) per window; a one-window sentence reuses its encoding."""
    if len(windows) == 1 and len(ids) <= max_length:
        yield windows[0], ids, first
        return
    for w in windows:
        enc = tokenizer(words[w.start:w.end], is_split_into_words=True, truncation=True, max_length=max_length)
        yield w, enc["input_ids"], _tag_positions(enc.word_ids(), w.start, marked)


INFO = TaskInfo("ner", NerTask, Options, metrics=("f1", "precision", "recall", "loss"), decoder_tuning="lora",
                serving=("lmkernel.serve.routes.entities:router", "lmkernel.serve.entities:NerPredictor"))
