"""Few-shot training (SetFit's recipe, written here): contrastive pairs tune the encoder, then a head is fitted.

1. Contrastive tuning (``tuning.fewshot.epochs`` > 0): pairs from ``fewshot_pairs`` (same class → cosine 1,
   other class → cosine 0), mean-pooled unit vectors from both sides in one forward, SetFit's
   ``CosineSimilarityLoss`` (the squared error between the cosine and the target) or CoSENT
   (``tasks/embedding_losses``).
2. The head, on the tuned encoder's vectors of the training examples: scikit-learn's logistic regression
   (SetFit's default head), copied into the classifier's linear layer; or the class prototypes (the mean
   unit vector of each class, times a scale: the logits are scaled cosines), which needs no training at all.

This is the method's ``fit`` hook: the pipeline calls it instead of the standard loop, with the loop's
arguments, and reads the same ``TrainResult``.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data.batching import eval_batches
from ..training.loop import RunWriter, TrainResult, non_finite_loss
from .fewshot_model import FewShotClassifier
from .fewshot_pairs import check_classes, sample_pairs


def fit(model: FewShotClassifier, task: Any, train_features: list[dict], val_features: list[dict] | None,
        labels: list[str], opts: Any, seed: int, run_dir: Path, accelerator: Any, pad_id: int,
        resume: bool = False, progress: bool = True, tuning: Any = None, objective: Any = None) -> TrainResult:
    """Tune ``model`` in place (no checkpoints: a few-shot run is short, so ``resume`` starts it again)."""
    fo = tuning.options
    label_ids = [int(f["labels"]) for f in train_features]
    epochs = fo.contrastive_epochs()
    if epochs:
        check_classes(label_ids, labels)
    torch.manual_seed(seed)
    model.to(accelerator.device)
    result = TrainResult(precision=accelerator.mixed_precision)
    writer = RunWriter(accelerator, run_dir)
    try:
        if epochs:
            _contrastive(model, task, train_features, label_ids, fo, opts, seed, pad_id, accelerator, writer,
                         result, epochs, progress)
        else:
            writer.event("start", step=0, total_steps=0, steps_per_epoch=0, epochs=0)
        vectors = embed_features(model, task, train_features, pad_id, opts.eval_batch_size, accelerator)
        weight, bias = (prototype_head(vectors, label_ids, len(labels), fo.prototype_scale) if fo.head == "prototype"
                        else logistic_head(vectors, label_ids, len(labels), fo.logistic_c, seed))
        with torch.no_grad():
            model.classifier.weight.copy_(torch.as_tensor(weight))
            model.classifier.bias.copy_(torch.as_tensor(bias))
    except BaseException as e:  # a kill or an error still tells readers the run is over
        writer.event("error", step=result.global_step, error=f"{type(e).__name__}: {e}")
        writer.close()
        raise
    writer.event("end", step=result.global_step, best_step=None, best_metric=None, stopped_early=False)
    writer.close()
    return result


def _contrastive(model: FewShotClassifier, task: Any, features: list[dict], label_ids: list[int], fo: Any,
                 opts: Any, seed: int, pad_id: int, accelerator: Any, writer: Any, result: TrainResult,
                 epochs: int, progress: bool) -> None:
    """Contrastive epochs over fresh pairs each epoch; logs like the standard loop (history, progress.jsonl)."""
    from tqdm.auto import tqdm
    from transformers import get_linear_schedule_with_warmup

    first = sample_pairs(label_ids, fo.pairs_per_example, fo.max_pairs, seed)
    per_epoch = math.ceil(len(first) / fo.batch_size)
    total = min(per_epoch * epochs, opts.max_steps or per_epoch * epochs)
    params = [p for p in model.encoder.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=opts.lr, weight_decay=opts.weight_decay)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(total * opts.warmup_ratio), total)
    result.steps_per_epoch = per_epoch
    writer.event("start", step=0, total_steps=total, steps_per_epoch=per_epoch, epochs=epochs)
    bar = tqdm(total=total, desc="contrastive", unit="step", disable=not (progress and accelerator.is_main_process))
    model.train()
    start, loss_sum, loss_n = time.perf_counter(), 0.0, 0
    for epoch in range(epochs):
        pairs = first if epoch == 0 else sample_pairs(label_ids, fo.pairs_per_example, fo.max_pairs, seed + epoch)
        for at in range(0, len(pairs), fo.batch_size):
            if result.global_step >= total:
                break
            loss = _pair_loss(model, task, features, pairs[at:at + fo.batch_size], fo.loss, pad_id, accelerator)
            loss.backward()
            if opts.grad_clip:
                torch.nn.utils.clip_grad_norm_(params, opts.grad_clip)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            value = float(loss.detach())
            if not math.isfinite(value):
                raise non_finite_loss(value, result.global_step + 1, opts, result.precision)
            result.global_step += 1
            result.train_samples += 2 * len(pairs[at:at + fo.batch_size])
            result.train_seconds = time.perf_counter() - start
            loss_sum, loss_n = loss_sum + value, loss_n + 1
            bar.update(1)
            if result.global_step % opts.log_every == 0 or result.global_step == total:
                avg, loss_sum, loss_n = loss_sum / loss_n, 0.0, 0
                result.history.append({"step": result.global_step, "epoch": epoch + 1, "train_loss": avg})
                writer.scalar("train/loss", avg, result.global_step)
                writer.event("train", step=result.global_step, epoch=epoch + 1, train_loss=avg,
                             lr=scheduler.get_last_lr()[0], total_steps=total)
                bar.set_postfix(loss=f"{avg:.4f}")
    bar.close()
    model.eval()


def _pair_loss(model: FewShotClassifier, task: Any, features: list[dict], pairs: list[tuple[int, int, float]],
               loss: str, pad_id: int, accelerator: Any) -> torch.Tensor:
    """Both sides of the pairs in one forward, each distinct text once (with few examples most of a batch's
    texts repeat), then the cosine-regression or CoSENT loss."""
    from ..tasks.embedding_losses import cosent_loss

    distinct = sorted({i for i, _, _ in pairs} | {j for _, j, _ in pairs})
    row_of = {k: r for r, k in enumerate(distinct)}
    rows = [{"input_ids": features[k]["input_ids"]} for k in distinct]
    batch = {k: v.to(accelerator.device) for k, v in task.collate(rows, pad_id).items()}
    with accelerator.autocast():
        vectors = model.embed(batch["input_ids"], batch["attention_mask"])
    left = vectors[torch.tensor([row_of[i] for i, _, _ in pairs], device=vectors.device)]
    right = vectors[torch.tensor([row_of[j] for _, j, _ in pairs], device=vectors.device)]
    target = torch.tensor([t for _, _, t in pairs], dtype=vectors.dtype, device=vectors.device)
    if loss == "cosent":
        return cosent_loss(left, right, target)
    return torch.nn.functional.mse_loss((left * right).sum(-1), target)


@torch.no_grad()
def embed_features(model: FewShotClassifier, task: Any, features: list[dict], pad_id: int, batch_size: int,
                   accelerator: Any) -> np.ndarray:
    """Unit vectors [n, H] of the features, in their order."""
    model.eval()
    out = np.zeros((len(features), model.config.hidden_size), dtype=np.float32)
    for idx in eval_batches([len(f["input_ids"]) for f in features], batch_size):
        batch = {k: v.to(accelerator.device)
                 for k, v in task.collate([{"input_ids": features[i]["input_ids"]} for i in idx], pad_id).items()}
        with accelerator.autocast():
            out[idx] = model.embed(batch["input_ids"], batch["attention_mask"]).float().cpu().numpy()
    return out


def prototype_head(vectors: np.ndarray, label_ids: list[int], n_labels: int,
                   scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Rows = each class's mean vector, renormalised, times ``scale``; a class without examples never wins."""
    weight = np.zeros((n_labels, vectors.shape[1]), dtype=np.float32)
    bias = np.zeros(n_labels, dtype=np.float32)
    y = np.asarray(label_ids)
    for c in range(n_labels):
        if not (y == c).any():
            bias[c] = -1e4
            continue
        mean = vectors[y == c].mean(0)
        weight[c] = scale * mean / max(float(np.linalg.norm(mean)), 1e-12)
    return weight, bias


def logistic_head(vectors: np.ndarray, label_ids: list[int], n_labels: int, c: float,
                  seed: int) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's logistic regression as a linear layer's (weight, bias); a binary model's single row
    becomes ±half of it, so the softmax of the two logits is its sigmoid."""
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(C=c, max_iter=1000, random_state=seed).fit(vectors, label_ids)
    weight = np.zeros((n_labels, vectors.shape[1]), dtype=np.float32)
    bias = np.full(n_labels, -1e4, dtype=np.float32)  # classes absent from training never win
    rows = clf.classes_.astype(int)
    if len(rows) == 2:
        weight[rows[0]], weight[rows[1]] = -clf.coef_[0] / 2, clf.coef_[0] / 2
        bias[rows[0]], bias[rows[1]] = -clf.intercept_[0] / 2, clf.intercept_[0] / 2
    else:
        weight[rows], bias[rows] = clf.coef_, clf.intercept_
    return weight, bias
