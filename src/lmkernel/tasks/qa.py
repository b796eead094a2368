"""Extractive question answering: the answer is a span of the context, found by an encoder's start/end head.

Data is SQuAD-layout JSON (SQuAD 1.1/2.0, CMRC 2018 squad-style, XQuAD) or flat JSONL (``qa_data``);
long contexts run as overlapping windows and the answer is the best span over all of them, or ""
when no-answer is allowed and wins (``qa_spans``); EM and F1 follow SQuAD's script for English and
CMRC 2018's for Chinese (``evaluation.qa_metrics``). ``predict`` takes {"question", "context"} items.

The evaluation loop only hands a task tensors, so each encoded window gets an integer id (``qa_window``)
and the task keeps what scoring needs (offsets, context, gold answers) under that id.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field

from ..data.batching import eval_batches
from ..errors import LmkError
from .base import Batch, Dataset, Example, Feature, TaskInfo, TaskOptions, no_grad
from .classification import check_bad_rows
from .qa_spans import Candidates, Window, best_answer, encode_windows, window_candidates


class Options(TaskOptions):
    type: Literal["qa"] = "qa"
    doc_stride: int = Field(128, ge=0, description="Tokens two consecutive windows of a long context share (at most "
                            "half the room data.max_length leaves for the context).")
    max_question_length: int = Field(64, gt=0, description="Question tokens kept (longer questions are cut).")
    max_answer_length: int = Field(30, gt=0, description="Longest answer span in tokens.")
    n_best: int = Field(20, gt=0, description="Start and end candidates per window that spans are built from.")
    no_answer: Literal["auto", "allow", "never"] = Field(
        "auto", description="allow: answer \"\" when the no-answer score beats the best span by more than "
        "null_threshold (SQuAD 2.0); never: always give the best span; auto: allow when the training data has "
        "unanswerable questions (the card records the choice).")
    null_threshold: float = Field(0.0, description="How much the no-answer score must beat the best span by "
                                  "(start + end logits) for answer \"\".")
    metric_language: Literal["auto", "en", "zh"] = Field(
        "auto", description="EM/F1 scoring: en = SQuAD's (words, articles and punctuation dropped), zh = CMRC "
        "2018's (characters); auto: zh when the contexts are mostly Chinese-like script.")


class QaTask:
    name: ClassVar[str] = "qa"
    auto_model: ClassVar[str] = "AutoModelForQuestionAnswering"

    def __init__(self, options: Any = None) -> None:
        self.options = options if options is not None else Options()
        self._windows: dict[int, tuple[Window, Example, str]] = {}  # qa_window id -> window, example, language
        self._ids = itertools.count()

    # ---------------------------------------------------------------- data
    def read(self, path: Path, data: Any, labels: list[str] | None) -> Dataset:
        from .qa_data import read_qa

        result = read_qa(Path(path), data.format)
        check_bad_rows(result.bad, data.on_bad_rows, str(path))
        return Dataset(result.examples, result.bad)

    def split_group(self, example: Example) -> str:
        """Hold-out splits keep a context's questions on one side."""
        return example.fields["group"]

    def infer_labels(self, examples: list[Example]) -> list[str]:
        """No labels; resolves ``no_answer: auto`` from the training data (written to the card)."""
        if self.options.no_answer == "auto":
            self.options.no_answer = "allow" if any(not e.label for e in examples) else "never"
        return []

    def build_model(self, path: Path, labels: list[str]):
        from transformers import AutoModelForQuestionAnswering

        from ..models.resolve import load_pretrained

        return load_pretrained(AutoModelForQuestionAnswering, path)

    # ---------------------------------------------------------------- encoding
    def plan_windows(self, tokenizer, questions: list[str], contexts: list[str], spans,
                     max_length: int) -> list[Window]:
        o = self.options
        return encode_windows(tokenizer, questions, contexts, spans, max_length, o.doc_stride, o.max_question_length)

    def encode(self, examples: list[Example], tokenizer, labels: list[str], max_length: int) -> list[Feature]:
        from ..evaluation.qa_metrics import metric_language

        language = metric_language([e.fields["context"] for e in examples], self.options.metric_language)
        windows = self.plan_windows(tokenizer, [e.fields["question"] for e in examples],
                             [e.fields["context"] for e in examples], [e.fields["spans"] for e in examples], max_length)
        features = []
        for w in windows:
            wid = next(self._ids)
            self._windows[wid] = (w, examples[w.item], language)
            features.append(_feature(w) | {"start_positions": w.start, "end_positions": w.end, "qa_window": wid})
        return features

    def collate(self, features: list[Feature], pad_id: int) -> Batch:
        import torch

        width = max(len(f["input_ids"]) for f in features)
        ids = torch.full((len(features), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(features), width), dtype=torch.long)
        types = torch.zeros((len(features), width), dtype=torch.long)
        for i, f in enumerate(features):
            n = len(f["input_ids"])
            ids[i, :n] = torch.tensor(f["input_ids"])
            mask[i, :n] = 1
            if f.get("token_type_ids") is not None:
                types[i, :n] = torch.tensor(f["token_type_ids"])
        batch = {"input_ids": ids, "attention_mask": mask}
        if features[0].get("token_type_ids") is not None:
            batch["token_type_ids"] = types
        for key in ("start_positions", "end_positions", "qa_window"):
            if key in features[0]:
                batch[key] = torch.tensor([f[key] for f in features], dtype=torch.long)
        return batch

    def forward(self, model, batch: Batch):
        """``model(**batch)`` without the window ids the model does not take."""
        return model(**{k: v for k, v in batch.items() if k != "qa_window"})

    # ---------------------------------------------------------------- evaluation
    def step_outputs(self, out, batch: Batch) -> dict[str, list]:
        """Per window: (question key, gold answers, language, the window's candidates as text spans)."""
        o = self.options
        rows = []
        starts, ends = out.start_logits.detach().cpu(), out.end_logits.detach().cpu()
        for row, wid in enumerate(batch["qa_window"].tolist()):
            w, example, language = self._windows[wid]
            c = window_candidates(starts[row], ends[row], w.offsets, w.cls, w.item, o.n_best, o.max_answer_length)
            context = example.fields["context"]
            key = (example.file, example.line, example.fields["id"])
            rows.append((key, example.label, language, context, c))
        return {"qa": rows}

    def metrics(self, outputs: dict[str, list], labels: list[str]) -> dict[str, Any]:
        from ..evaluation.qa_metrics import qa_scores

        by_question: dict[Any, list] = {}
        for key, golds, language, context, cand in outputs.get("qa", []):
            by_question.setdefault(key, [golds, language, context, []])[3].append(cand)
        preds, golds, languages = [], [], []
        for gold, language, context, cands in by_question.values():
            preds.append(best_answer(context, cands, self.allow_null, self.options.null_threshold)["answer"])
            golds.append(gold)
            languages.append(language)
        language = max(set(languages), key=languages.count) if languages else "en"
        return qa_scores(preds, golds, language)

    @property
    def allow_null(self) -> bool:
        return self.options.no_answer == "allow"

    # ---------------------------------------------------------------- prediction
    @no_grad
    def predict(self, model, tokenizer, texts: list[Any], labels: list[str], *,
                max_length: int, batch_size: int) -> list[dict[str, Any]]:
        """{answer, score, start, end} per {"question", "context"} item: character offsets into the context,
        answer "" (start = end = -1) for no answer."""
        items = [qa_item(t, i) for i, t in enumerate(texts)]
        windows = self.plan_windows(tokenizer, [q for q, _ in items], [c for _, c in items], None, max_length)
        return self.answer_windows(model, tokenizer, items, windows, batch_size)

    def answer_windows(self, model, tokenizer, items: list[tuple[str, str]], windows: list[Window],
                       batch_size: int) -> list[dict[str, Any]]:
        """Run encoded windows and pick each question's answer (``predict``; the server's predictor)."""
        import torch

        model.eval()
        device = next(model.parameters()).device
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        o = self.options
        cands: list[list[Candidates]] = [[] for _ in items]
        feats = [_feature(w) for w in windows]
        with torch.no_grad():
            for idx in eval_batches([len(f["input_ids"]) for f in feats], batch_size):
                batch = {k: v.to(device) for k, v in self.collate([feats[j] for j in idx], pad).items()}
                out = model(**batch)
                starts, ends = out.start_logits.float().cpu(), out.end_logits.float().cpu()
                for row, j in enumerate(idx):
                    w = windows[j]
                    cands[w.item].append(window_candidates(starts[row], ends[row], w.offsets, w.cls, w.item,
                                                           o.n_best, o.max_answer_length))
        return [best_answer(context, c, self.allow_null, o.null_threshold) for (_, context), c in zip(items, cands)]


def _feature(w: Window) -> Feature:
    return {"input_ids": w.input_ids, "token_type_ids": w.token_type_ids}


def qa_item(value: Any, index: int = 0) -> tuple[str, str]:
    """(question, context) from {"question", "context"} or a (question, context) pair.

    Raises:
        LmkError: anything else, or an empty question or context.
    """
    if isinstance(value, dict):
        question, context = value.get("question"), value.get("context")
    elif isinstance(value, (tuple, list)) and len(value) == 2:
        question, context = value
    else:
        raise LmkError(f"qa input {index} is {type(value).__name__}, not a question with its context",
                       where=f"input {index}", fix='pass {"question": "...", "context": "..."} items '
                       "(CLI: lmkernel predict RUN --question Q --context C)")
    for name, text in (("question", question), ("context", context)):
        if not isinstance(text, str) or not text.strip():
            raise LmkError(f"qa input {index} has an empty or missing {name}", where=f"input {index}",
                           fix="give a non-empty question and context")
    return question.strip(), context


INFO = TaskInfo("qa", QaTask, Options, metrics=("f1", "exact_match", "loss"),
                serving=("lmkernel.serve.routes.qa:router", "lmkernel.serve.qa:QaPredictor"))
