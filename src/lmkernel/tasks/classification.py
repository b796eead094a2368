"""Text classification: one label per text (sentiment, intents, topics), any language."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, ClassVar, Literal

from ..data.batching import eval_batches
from ..data.readers import BadRow, read_rows
from ..errors import LmkError
from .base import Batch, Dataset, Example, Feature, TaskInfo, TaskOptions, no_grad


def _natural_key(label: str) -> tuple:
    return (0, int(label), "") if re.fullmatch(r"-?\d+", label) else (1, 0, label)


def _label_text(value: Any) -> str | None:
    if value is None or isinstance(value, (dict, list)):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip()
    return text or None


def check_bad_rows(bad: list[BadRow], on_bad_rows: str, what: str) -> None:
    """Stop at the first bad row unless the spec says to skip them."""
    if bad and on_bad_rows == "error":
        first = bad[0]
        more = f" ({len(bad) - 1} more bad row(s) after it)" if len(bad) > 1 else ""
        raise LmkError(
            f"bad row in {what}: {first.reason}{more}",
            where=f"{first.file} line {first.line}",
            fix="fix the row, or set data.on_bad_rows: skip to drop bad rows (they are counted in the report)",
        )


class Options(TaskOptions):
    type: Literal["classification"] = "classification"


class ClassificationTask:
    name: ClassVar[str] = "classification"
    auto_model: ClassVar[str] = "AutoModelForSequenceClassification"

    def __init__(self, options: Any = None) -> None:
        self.options = options

    def read(self, path: Path, data: Any, labels: list[str] | None) -> Dataset:
        text_column, label_column, on_bad_rows = data.text_column, data.label_column, data.on_bad_rows
        result = read_rows(path, [text_column, label_column], data.format)
        bad = list(result.bad)
        examples = []
        known = set(labels) if labels is not None else None
        for row in result.rows:
            text = row.fields.get(text_column)
            text = text.strip() if isinstance(text, str) else None
            label = _label_text(row.fields.get(label_column))
            if not text:
                bad.append(BadRow(str(path), row.line, f"empty text in column {text_column!r}"))
            elif label is None:
                bad.append(BadRow(str(path), row.line, f"empty or invalid label in column {label_column!r}"))
            elif known is not None and label not in known:
                bad.append(BadRow(str(path), row.line,
                                  f"label {label!r} does not occur in the training data (known: {sorted(known)[:10]})"))
            else:
                examples.append(Example(text, label, str(path), row.line))
        bad.sort(key=lambda b: b.line)
        check_bad_rows(bad, on_bad_rows, str(path))
        return Dataset(examples, bad)

    def report_sections(self, train: Dataset, labels: list[str]) -> list[str]:
        """The words that mark each label in the training data (shortcuts show up here)."""
        from ..evaluation.words import marking_words_section

        return marking_words_section(((e.text, e.label) for e in train.examples), labels)

    def split_stratum(self, example: Example) -> str:
        """data.split keeps each label's share in every split (data/stratify.py)."""
        return example.label

    def filter_known(self, examples: list[Example], labels: list[str]) -> list[Example]:
        """Held-out rows may carry a label too rare to reach train: they cannot be scored."""
        return [e for e in examples if e.label in labels]

    def infer_labels(self, examples: list[Example]) -> list[str]:
        labels = sorted({e.label for e in examples if e.label is not None}, key=_natural_key)
        if len(labels) < 2:
            raise LmkError(
                f"the training data has {len(labels)} distinct label(s); classification needs at least 2",
                where=examples[0].file if examples else "data.train",
                fix="check data.label_column and that the file has examples of every class",
            )
        return labels

    def build_model(self, path: Path, labels: list[str]):
        from transformers import AutoModelForSequenceClassification

        from ..models.decoder_heads import head_kwargs
        from ..models.resolve import load_pretrained

        return load_pretrained(
            AutoModelForSequenceClassification, path, num_labels=len(labels),
            id2label=dict(enumerate(labels)), label2id={lab: i for i, lab in enumerate(labels)}, **head_kwargs(path),
        )

    def encode(self, examples: list[Example], tokenizer, labels: list[str], max_length: int) -> list[Feature]:
        from ..models.decoder_heads import ensure_pad_token

        ensure_pad_token(tokenizer)  # a decoder's tokenizer may have none; the artifact saves the one chosen
        index = {lab: i for i, lab in enumerate(labels)}
        features: list[Feature] = []
        for start in range(0, len(examples), 2048):
            chunk = examples[start:start + 2048]
            ids = tokenizer([e.text for e in chunk], truncation=True, max_length=max_length)["input_ids"]
            for e, seq in zip(chunk, ids):
                features.append({"input_ids": seq, "labels": index.get(e.label, -100)})
        return features

    def collate(self, features: list[Feature], pad_id: int) -> Batch:
        import torch

        width = max(max(len(f["input_ids"]) for f in features), 1)
        ids = torch.full((len(features), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(features), width), dtype=torch.long)
        for i, f in enumerate(features):
            n = len(f["input_ids"])
            ids[i, :n] = torch.tensor(f["input_ids"], dtype=torch.long)
            mask[i, :max(n, 1)] = 1  # a text without tokens (a tokenizer that adds none) reads one pad token
        batch = {"input_ids": ids, "attention_mask": mask}
        if "labels" in features[0]:
            batch["labels"] = torch.tensor([f["labels"] for f in features], dtype=torch.long)
        return batch

    def step_outputs(self, out, batch: Batch) -> dict[str, list]:
        """Predicted and gold label ids, and the confidence (top probability) the error analysis reads."""
        confidence, pred = out.logits.float().softmax(-1).max(-1)
        return {"pred": pred.tolist(), "gold": batch["labels"].tolist(), "confidence": confidence.tolist()}

    def metrics(self, outputs: dict[str, list], labels: list[str]) -> dict[str, Any]:
        from ..evaluation.metrics import classification_metrics

        return classification_metrics(outputs["gold"], outputs["pred"], labels)

    @no_grad
    def predict(self, model, tokenizer, texts: list[str], labels: list[str], *,
                max_length: int, batch_size: int, trust: Any = None) -> list[dict[str, Any]]:
        """Label, score and probabilities per text; with a trust profile (``trust/profile.py``) also
        ``ood``, ``ood_score`` and ``low_confidence``, from the same forward pass."""
        import contextlib

        import torch

        from ..models.decoder_heads import batch_pad_id
        from ..trust.features import captured

        model.eval()
        device = next(model.parameters()).device
        ids = tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"]
        feats = [{"input_ids": seq} for seq in ids]
        results: list[dict[str, Any]] = [{} for _ in texts]
        pad = batch_pad_id(model, tokenizer)
        capturing = captured(model) if trust is not None and trust.needs_features else contextlib.nullcontext()
        with capturing as capture:
            for idx in eval_batches([len(f["input_ids"]) for f in feats], batch_size):
                batch = {k: v.to(device) for k, v in self.collate([feats[i] for i in idx], pad).items()}
                probs = torch.softmax(model(**batch).logits.float(), -1).cpu()
                pooled = capture.take().cpu().numpy() if capture is not None else None
                flags = (trust.flags(probs.numpy(), pooled, [feats[i]["input_ids"] for i in idx],
                                     tokenizer.unk_token_id) if trust is not None else [{}] * len(idx))
                for row, i in enumerate(idx):
                    p = probs[row].tolist()
                    best = max(range(len(p)), key=p.__getitem__)
                    results[i] = {"text": texts[i], "label": labels[best], "score": p[best],
                                  "probabilities": {lab: p[j] for j, lab in enumerate(labels)}, **flags[row]}
        return results


INFO = TaskInfo("classification", ClassificationTask, Options, metrics=("accuracy", "macro_f1", "loss"),
                decoder_tuning="lora",
                serving=("lmkernel.serve.routes.classify:router", "lmkernel.serve.predictor:ClassifierPredictor"))
