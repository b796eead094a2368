"""Sentence embeddings: contrastive fine-tuning of an encoder on pairs, triplets or scored pairs.

Mean pooling and L2 normalisation (the knowledge embedder's seam), trained with in-batch negatives
(pairs, triplets) or CoSENT (scored pairs). Evaluation embeds the held-out split: Spearman between
cosine and gold similarity, and retrieval of each anchor's positive among all positives of the split.
The artifact is a plain encoder folder plus the sentence-transformers module files, so
``SentenceTransformer(run_dir / "model")`` loads it too.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field

from ..errors import LmkError
from .base import Batch, Dataset, Example, Feature, TaskInfo, TaskOptions, no_grad
from .embedding_data import read_split


class Options(TaskOptions):
    type: Literal["embedding"] = "embedding"
    format: Literal["auto", "pairs", "triplets", "scored"] = Field(
        "auto", description="pairs (anchor, positive), triplets (anchor, positive, negative) or scored "
        "(text1, text2, score); auto: triplets with a negative column, scored with a score column, else pairs.")
    loss: Literal["auto", "mnrl", "cosent"] = Field(
        "auto", description="mnrl: in-batch negatives (pairs, triplets); cosent: CoSENT (scored pairs); "
        "auto: cosent for scored pairs, else mnrl.")
    scale: float = Field(20.0, gt=0, description="Cosine multiplier in both losses (1 / temperature; "
                         "sentence-transformers' default 20 = temperature 0.05).")
    text1_column: str | None = Field(None, description="Column of the first text (anchor); default: the first "
                                     "of anchor, query, sentence1, text1, question found.")
    text2_column: str | None = Field(None, description="Column of the second text (positive); default: the "
                                     "first of positive, sentence2, text2, document, answer found.")
    negative_column: str | None = Field(None, description="Triplets: column of the negative; default: negative.")
    score_column: str | None = Field(None, description="Scored pairs: column of the similarity score (any "
                                     "numeric scale); default: the first of score, similarity, label found.")


@dataclass
class EmbeddingOutput:
    """What the task's forward returns: the loss and each side's unit vectors."""

    loss: Any
    vectors: list[Any]


def _key(ids: list[int]) -> str:
    """Identifies a text by its tokens: the same positive twice is one document when ranking."""
    return hashlib.blake2b(repr(ids).encode(), digest_size=8).hexdigest()


def _pad(rows: list[list[int]], pad_id: int) -> tuple[Any, Any]:
    import torch

    width = max(max(len(r) for r in rows), 1)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, :len(r)] = torch.tensor(r, dtype=torch.long)
        mask[i, :max(len(r), 1)] = 1
    return ids, mask


SIDES = ("", "2", "3")  # batch keys input_ids, input_ids2, input_ids3: anchor, positive, negative


class EmbeddingTask:
    name: ClassVar[str] = "embedding"
    auto_model: ClassVar[str] = "AutoModel"

    def __init__(self, options: Any = None) -> None:
        self.options = options if options is not None else Options()

    def read(self, path: Path, data: Any, labels: list[str] | None) -> Dataset:
        dataset, layout = read_split(Path(path), data, self.options)
        loss = self.options.loss
        if loss == "cosent" and layout.format != "scored":
            raise LmkError(f"task.loss is cosent, but {path} holds {layout.format} (no score column)",
                           where="task.loss", fix="use loss: mnrl (or auto) for pairs and triplets")
        if loss == "mnrl" and layout.format == "scored":
            raise LmkError(f"task.loss is mnrl, but {path} holds scored pairs", where="task.loss",
                           fix="use loss: cosent (or auto) for scored pairs, or give (anchor, positive) pairs")
        return dataset

    def infer_labels(self, examples: list[Example]) -> list[str]:
        return []  # no classes: the targets are the pairs themselves

    def build_model(self, path: Path, labels: list[str]) -> Any:
        from transformers import AutoModel

        from ..models.resolve import load_pretrained

        return load_pretrained(AutoModel, path)

    def encode(self, examples: list[Example], tokenizer: Any, labels: list[str], max_length: int) -> list[Feature]:
        from ..models.decoder_heads import ensure_pad_token

        ensure_pad_token(tokenizer)
        features: list[Feature] = []
        for start in range(0, len(examples), 2048):
            chunk = examples[start:start + 2048]
            sides = len(chunk[0].fields["texts"]) if chunk else 0
            ids = [tokenizer([e.fields["texts"][s] for e in chunk], truncation=True,
                             max_length=max_length)["input_ids"] for s in range(sides)]
            for i, e in enumerate(chunk):
                f: Feature = {f"input_ids{SIDES[s]}": ids[s][i] for s in range(sides)}
                if e.label is not None:
                    f["score"] = float(e.label)
                features.append(f)
        return features

    def collate(self, features: list[Feature], pad_id: int) -> Batch:
        import torch

        batch: Batch = {}
        for side in SIDES:
            if f"input_ids{side}" in features[0]:
                batch[f"input_ids{side}"], batch[f"attention_mask{side}"] = _pad(
                    [f[f"input_ids{side}"] for f in features], pad_id)
        if "score" in features[0]:
            batch["scores"] = torch.tensor([f["score"] for f in features], dtype=torch.float32)
        return batch

    def forward(self, model: Any, batch: Batch) -> EmbeddingOutput:
        """Each side through the encoder, then the loss the data calls for."""
        from .embedding_losses import cosent_loss, mnrl_loss, sentence_vectors

        vectors = [sentence_vectors(model, batch[f"input_ids{s}"], batch[f"attention_mask{s}"])
                   for s in SIDES if f"input_ids{s}" in batch]
        scale = self.options.scale
        if "scores" in batch:
            loss = cosent_loss(vectors[0], vectors[1], batch["scores"], scale)
        else:
            loss = mnrl_loss(vectors[0], vectors[1], vectors[2] if len(vectors) > 2 else None, scale)
        return EmbeddingOutput(loss, vectors)

    def step_outputs(self, out: EmbeddingOutput, batch: Batch) -> dict[str, list]:
        result: dict[str, list] = {}
        for n, (side, vectors) in enumerate(zip(SIDES, out.vectors), start=1):
            result[f"emb{n}"] = vectors.detach().float().cpu().tolist()
            if n <= 2:
                ids, mask = batch[f"input_ids{side}"].tolist(), batch[f"attention_mask{side}"].tolist()
                result[f"key{n}"] = [_key([t for t, m in zip(r, k) if m]) for r, k in zip(ids, mask)]
        if "scores" in batch:
            result["score"] = batch["scores"].tolist()
        return result

    def metrics(self, outputs: dict[str, list], labels: list[str]) -> dict[str, Any]:
        from ..evaluation.embedding_metrics import embedding_metrics

        return embedding_metrics(outputs)

    @no_grad
    def embed(self, model: Any, tokenizer: Any, texts: list[str], *, max_length: int, batch_size: int) -> Any:
        """Float32 unit vectors [n, dim] for ``texts`` (batched by length, returned in the order given)."""
        import numpy as np

        from ..models.decoder_heads import batch_pad_id
        from .embedding_losses import sentence_vectors

        model.eval()
        device = next(model.parameters()).device
        ids = tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"] if texts else []
        out = np.zeros((len(texts), int(model.config.hidden_size)), dtype=np.float32)
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        pad = batch_pad_id(model, tokenizer)
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            input_ids, mask = _pad([ids[i] for i in idx], pad)
            out[idx] = sentence_vectors(model, input_ids.to(device), mask.to(device)).cpu().numpy()
        return out

    def predict(self, model: Any, tokenizer: Any, texts: list[str], labels: list[str], *,
                max_length: int, batch_size: int) -> list[dict[str, Any]]:
        """Each text's unit vector: ``{"text", "dim", "embedding"}`` (``embedding``: the full vector)."""
        vectors = self.embed(model, tokenizer, texts, max_length=max_length, batch_size=batch_size)
        return [{"text": t, "dim": int(v.shape[0]), "embedding": [round(float(x), 6) for x in v]}
                for t, v in zip(texts, vectors)]

    def save_files(self, directory: Path, card: dict[str, Any]) -> None:
        """The sentence-transformers module files beside the encoder (full or merged weights only)."""
        from .embedding_st import write_sentence_transformers_files

        if card.get("weights") in ("full", "merged"):
            write_sentence_transformers_files(directory, max_seq_length=int(card.get("max_length") or 512))


INFO = TaskInfo("embedding", EmbeddingTask, Options,
                metrics=("spearman", "ndcg@10", "mrr@10", "recall@1", "recall@5", "loss"))
