"""The training loop, on Accelerate.

Only Accelerate objects touch devices and processes, so the same code runs on one CPU, one GPU
or N processes under ``accelerate launch`` / ``torchrun``. Batches come from our own
length-grouped scheduler, sharded by rank, which makes "where were we" a pair of integers
(epoch, batch) that a checkpoint can store and a resumed run can skip to.

Training data is either a list of features (batched here by ``train_batches``) or a streaming
``BatchSource`` (pretraining: a corpus read, tokenized and packed on the fly, never held in
memory). Both give an epoch a known number of batches and a deterministic order from
(seed, epoch), so resume is the same pair of integers for both.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch

from ..catalog import PROGRESS_FILE
from ..data.batching import eval_batches, train_batches
from ..errors import LmkError
from ..evaluation.metrics import LOWER_IS_BETTER, improved  # noqa: F401 - LOWER_IS_BETTER: re-exported for older imports
from ..fsutil import atomic_write
from ..models.quiet import known_warnings_ignored
from ..spec import TrainSpec
from .checkpoint import checkpoint_root, fault_point, latest_checkpoint, load_checkpoint, save_checkpoint
from .dropout import use_cheap_dropout
from .lora import use_addmm_lora
from .objective import Objective, Step, plain, task_forward
from .probes import probe_rows, probe_steps

NO_CHECKPOINTS = 2**62  # train.checkpoint_every that writes none, not even the last (search trials are never resumed)


@runtime_checkable
class BatchSource(Protocol):
    """Streaming training data: batches of features made on the fly, in an order fixed by the epoch."""

    def num_batches(self) -> int:
        """Batches per epoch on this process (the same on every process)."""

    def iter_batches(self, epoch: int, start: int) -> Any:
        """Yield this process's batches (lists of features) of ``epoch``, skipping the first ``start``."""


@dataclass
class TrainResult:
    history: list[dict[str, Any]] = field(default_factory=list)  # {"step", "train_loss"} / {"step", "eval": {...}}
    best_metric: float | None = None
    best_step: int | None = None
    global_step: int = 0
    train_seconds: float = 0.0
    train_samples: int = 0
    stopped_early: bool = False
    precision: str = "no"
    world_size: int = 1
    steps_per_epoch: int = 1

    @property
    def epochs_trained(self) -> float:
        return self.global_step / max(self.steps_per_epoch, 1)

    @property
    def samples_per_second(self) -> float:
        return self.train_samples / self.train_seconds if self.train_seconds else 0.0


def _optimizer(model: torch.nn.Module, lr: float, weight_decay: float, tuning=None) -> torch.optim.Optimizer:
    """AdamW over the tuning method's parameter groups (default: no decay on biases and norms)."""
    from ..tuning.groups import default_groups

    groups_of = tuning.hook("param_groups") if tuning is not None else None
    groups = (groups_of(model, lr, weight_decay, tuning.options, tuning.ctx) if groups_of is not None
              else default_groups(model, weight_decay))
    params = [g for g in groups if g["params"]]
    try:  # the fused kernel is much faster than the for-each one on CPU
        return torch.optim.AdamW(params, lr=lr, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.AdamW(params, lr=lr)


def _to(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def evaluate(model, task, features: list[dict], labels: list[str], batch_size: int, accelerator,
             pad_id: int, progress: bool = True, keep: dict[str, list] | None = None) -> dict[str, Any]:
    """Validation loss and the task's metrics, each process running its shard of the batches.
    ``keep``: filled with the per-example outputs and ``index`` (the feature of each), for error analysis."""
    with torch.no_grad(), known_warnings_ignored():
        return _evaluate(model, task, features, labels, batch_size, accelerator, pad_id, progress, keep)


def _evaluate(model, task, features: list[dict], labels: list[str], batch_size: int, accelerator,
              pad_id: int, progress: bool, keep: dict[str, list] | None = None) -> dict[str, Any]:
    from tqdm.auto import tqdm

    model = accelerator.unwrap_model(model, keep_fp32_wrapper=True)  # no DDP collectives in eval forwards
    was_training = model.training
    model.eval()
    lengths = [len(f["input_ids"]) for f in features]
    mine = eval_batches(lengths, batch_size, accelerator.num_processes, accelerator.process_index)
    outputs: dict[str, list] = {}
    loss_sum, count, start = 0.0, 0, time.perf_counter()
    bar = tqdm(mine, desc="eval", unit="batch", leave=False,
               disable=not (progress and accelerator.is_local_main_process))
    for idx in bar:
        batch = _to(task.collate([features[i] for i in idx], pad_id), accelerator.device)
        with accelerator.autocast():
            out = task_forward(task, model, batch)
        loss_sum += float(out.loss.detach()) * len(idx)
        count += len(idx)
        for k, v in task.step_outputs(out, batch).items():
            outputs.setdefault(k, []).extend(v)
        outputs.setdefault("index", []).extend(idx)
        bar.set_postfix(loss=f"{loss_sum / count:.4f}", samples_s=f"{count / (time.perf_counter() - start):.0f}")
    if accelerator.num_processes > 1:
        from accelerate.utils import gather_object

        parts = gather_object([(loss_sum, count, outputs)])
        loss_sum = sum(p[0] for p in parts)
        count = sum(p[1] for p in parts)
        keys = {k for p in parts for k in p[2]}
        outputs = {k: [x for p in parts for x in p[2].get(k, [])] for k in keys}
    if keep is not None:
        keep.update(outputs)
    metrics = task.metrics({k: v for k, v in outputs.items() if k != "index"}, labels)
    metrics.setdefault("loss", loss_sum / max(count, 1))
    model.train(was_training)
    return metrics


def _trainable_state(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().cpu().clone() for n, p in model.named_parameters() if p.requires_grad}


def _save_best(accelerator, model, path: Path) -> None:
    from safetensors.torch import save_file

    state = _trainable_state(accelerator.unwrap_model(model))
    if accelerator.is_main_process:
        atomic_write(path, lambda p: save_file({k: v.contiguous() for k, v in state.items()}, str(p)))
    accelerator.wait_for_everyone()


def _load_best(accelerator, model, path: Path) -> None:
    from safetensors.torch import load_file

    state = load_file(str(path))
    accelerator.unwrap_model(model).load_state_dict(state, strict=False)


def _shown(task) -> tuple[str, ...]:
    """The validation metrics the task registers (and the loss): logged to TensorBoard and printed."""
    from ..tasks import task_info, task_names

    name = getattr(task, "name", None)
    return task_info(name).shown if name in task_names() else ("loss",)


class RunWriter:
    """TensorBoard events and ``progress.jsonl`` (one JSON line per event: start, train, eval, end — what a
    search or a console follows while the run goes on) on the main process only (no-op elsewhere)."""

    def __init__(self, accelerator, run_dir: Path):
        self.writer = self.events = None
        if accelerator.is_main_process:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(run_dir / "tensorboard"))
            self.events = open(run_dir / PROGRESS_FILE, "a", encoding="utf-8")  # noqa: SIM115 (closed in close())

    def scalar(self, tag: str, value: float, step: int) -> None:
        if self.writer is not None:
            self.writer.add_scalar(tag, value, step)

    def event(self, kind: str, **fields: Any) -> None:
        """Append one line, flushed at once: readers see each step as it lands (a torn last line is skipped)."""
        if self.events is not None:
            self.events.write(json.dumps({"event": kind, "time": round(time.time(), 3), **fields},
                                         ensure_ascii=False, default=str) + "\n")
            self.events.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        if self.events is not None:
            self.events.close()


class _Loop:
    """One training run's state: where we are, what we measured, and the objects that train."""

    STATE_KEYS = ("history", "best_metric", "best_step", "global_step", "train_seconds", "train_samples")

    def __init__(self, model, task, train_features, val_features, labels, opts: TrainSpec, seed: int,
                 run_dir: Path, accelerator, pad_id: int, progress: bool, tuning=None,
                 objective: Objective | None = None, probes: int = 0):
        from transformers import get_linear_schedule_with_warmup

        self.task, self.train_features, self.val_features, self.labels = task, train_features, val_features, labels
        self.opts, self.seed, self.run_dir, self.acc, self.pad_id, self.progress = (
            opts, seed, run_dir, accelerator, pad_id, progress)
        self.world, self.rank = accelerator.num_processes, accelerator.process_index
        self.stream = train_features if isinstance(train_features, BatchSource) else None
        self.lengths = [] if self.stream is not None else [len(f["input_ids"]) for f in train_features]
        per_epoch = self.stream.num_batches() if self.stream is not None else len(self.epoch_batches(0))
        self.steps_per_epoch = math.ceil(per_epoch / opts.grad_accum)
        self.total_steps = opts.max_steps or self.steps_per_epoch * opts.epochs
        self.epochs = math.ceil(self.total_steps / self.steps_per_epoch)
        self.eval_every = opts.eval_every or self.steps_per_epoch
        self.ckpt_every = opts.checkpoint_every or self.eval_every
        self.probes = probes
        # in-epoch optimizer step -> k: a probe after k/probes of each epoch (probe_steps)
        self.probe_at = probe_steps(self.steps_per_epoch, probes) if val_features and not opts.eval_every else {}
        self.probe_features = probe_rows(val_features) if self.probe_at else []
        model.train()
        if accelerator.device.type == "cpu":
            use_cheap_dropout(model)
        use_addmm_lora(model)
        self.tuning = tuning
        self.objective = objective or plain
        optimizer = _optimizer(model, opts.lr, opts.weight_decay, tuning)
        self.scheduler = get_linear_schedule_with_warmup(
            optimizer, int(opts.warmup_ratio * self.total_steps), self.total_steps)
        self.model, self.optimizer = accelerator.prepare(model, optimizer)
        self.result = TrainResult(precision=accelerator.mixed_precision, world_size=self.world,
                                  steps_per_epoch=self.steps_per_epoch)
        # position in the data and loss accumulated since the last log line: all a resume needs
        self.pos = {"epoch": 0, "batch": 0, "bad_evals": 0, "loss_sum": 0.0, "loss_n": 0}
        self.best_path = checkpoint_root(run_dir) / "best.safetensors"
        self.call_hook("before_train", self.total_steps)

    def call_hook(self, name: str, *args: Any) -> Any:
        """The tuning method's hook ``name`` on the unwrapped model, if the method has one."""
        hook = self.tuning.hook(name) if self.tuning is not None else None
        if hook is None:
            return None
        return hook(self.acc.unwrap_model(self.model), *args, self.tuning.options)

    def epoch_batches(self, epoch: int) -> list[list[int]]:
        o = self.opts
        return train_batches(self.lengths, o.batch_size, self.seed, epoch, o.group_by_length, self.world, self.rank)

    def epoch_iter(self, epoch: int, start: int) -> tuple[int, Any]:
        """(batches in the epoch, iterator over them from ``start``): index lists, or features when streaming."""
        if self.stream is not None:
            return self.stream.num_batches(), iter(self.stream.iter_batches(epoch, start))
        batches = self.epoch_batches(epoch)
        return len(batches), iter(batches[start:])

    def resume(self) -> None:
        found = latest_checkpoint(self.run_dir)
        if found is None:
            return
        saved = load_checkpoint(self.acc, found, self.model, self.optimizer, self.scheduler)
        if "method" in saved:
            self.call_hook("load_state", saved["method"], saved.get("method_tensors") or {})
        missing = [k for k in self.pos if k not in saved["loop"]] + [k for k in self.STATE_KEYS
                                                                      if k not in saved["result"]]
        if missing:
            raise LmkError(f"checkpoint {found} cannot be loaded: its state lacks {', '.join(missing)}",
                           where=str(found / "trainer_state.json"),
                           fix=f"delete {found} to resume from an earlier checkpoint, or start a fresh run "
                           "without --resume")
        self.pos.update({k: saved["loop"][k] for k in self.pos})
        for key in self.STATE_KEYS:
            setattr(self.result, key, saved["result"][key])
        if self.acc.is_main_process:
            print(f"resumed from {found} (step {self.result.global_step}, epoch {self.pos['epoch'] + 1})")

    def checkpoint(self) -> None:
        state = {"loop": self.pos, "result": {k: getattr(self.result, k) for k in self.STATE_KEYS}}
        method = self.call_hook("state")  # a method's own state (AdaLoRA's importance scores): JSON + tensors
        if method is not None:
            state["method"] = method[0]
        save_checkpoint(self.acc, self.run_dir, self.result.global_step, state, self.model, self.optimizer,
                        self.scheduler, tensors=None if method is None else method[1])

    def micro_step(self, items: list, sync: bool, group_size: int, fetch_seconds: float = 0.0) -> None:
        """Forward and backward one batch; on ``sync`` also clip, step and zero the gradients.

        ``items`` are feature indices, or the features themselves when streaming."""
        t0 = time.perf_counter() - fetch_seconds  # throughput counts reading, collation, forward, backward, step
        feats = items if self.stream is not None else [self.train_features[j] for j in items]
        batch = _to(self.task.collate(feats, self.pad_id), self.acc.device)
        with self.acc.no_sync(self.model) if not sync else contextlib.nullcontext():
            out = self.objective(Step(self.model, self.task, batch, lambda loss: self.acc.backward(loss / group_size),
                                      self.result.global_step + 1, lambda: self.acc.unwrap_model(self.model)))
        if sync:
            if self.opts.grad_clip:
                self.acc.clip_grad_norm_(self.model.parameters(), self.opts.grad_clip)
            self.optimizer.step()
            self.scheduler.step()
            self.call_hook("after_step", self.result.global_step + 1)  # gradients still there (AdaLoRA reads them)
            self.optimizer.zero_grad(set_to_none=True)
        self.result.train_seconds += time.perf_counter() - t0
        self.result.train_samples += len(items) * self.world
        loss = float(out.loss.detach())
        if not math.isfinite(loss):
            raise non_finite_loss(loss, self.result.global_step + 1, self.opts, self.result.precision)
        self.pos["loss_sum"] += loss
        self.pos["loss_n"] += 1

    def log(self, writer: RunWriter, bar) -> None:
        r = self.result
        avg = self.pos["loss_sum"] / max(self.pos["loss_n"], 1)
        r.history.append({"step": r.global_step, "epoch": self.pos["epoch"] + 1, "train_loss": avg})
        lr = self.scheduler.get_last_lr()[0]
        writer.scalar("train/loss", avg, r.global_step)
        writer.scalar("train/lr", lr, r.global_step)
        writer.event("train", step=r.global_step, epoch=self.pos["epoch"] + 1, train_loss=avg, lr=lr,
                     total_steps=self.total_steps)
        bar.set_postfix(loss=f"{avg:.4f}", samples_s=f"{r.samples_per_second:.0f}")
        self.pos["loss_sum"], self.pos["loss_n"] = 0.0, 0

    def evaluate(self, writer: RunWriter, bar) -> bool:
        """Evaluate, keep the best weights; True when early stopping says stop."""
        r, o = self.result, self.opts
        metrics = evaluate(self.model, self.task, self.val_features, self.labels, o.eval_batch_size, self.acc,
                           self.pad_id, self.progress)
        r.history.append({"step": r.global_step, "epoch": self.pos["epoch"], "eval": metrics})
        shown = {k: metrics[k] for k in _shown(self.task) if isinstance(metrics.get(k), float)}
        for key, value in shown.items():
            writer.scalar(f"eval/{key}", value, r.global_step)
        writer.event("eval", step=r.global_step, epoch=self.pos["epoch"], metric=o.metric,
                     metrics={k: v for k, v in metrics.items() if isinstance(v, int | float)})
        value = metrics[o.metric]  # the spec checked the name against the task's metrics
        if improved(value, r.best_metric, o.metric):
            r.best_metric, r.best_step = value, r.global_step
            self.pos["bad_evals"] = 0
            _save_best(self.acc, self.model, self.best_path)
        else:
            self.pos["bad_evals"] += 1
        if self.acc.is_main_process:
            bar.write(f"step {r.global_step}: " + ", ".join(f"{k}={v:.4f}" for k, v in shown.items()))
        return bool(o.patience and self.pos["bad_evals"] >= o.patience)

    def probe(self, writer: RunWriter, k: int) -> None:
        """A search's look at the validation metric mid-epoch: logged for its pruner, never a candidate for the
        best weights, early stopping or a checkpoint, so the run's result is the one it has without probes."""
        o = self.opts
        metrics = evaluate(self.model, self.task, self.probe_features, self.labels, o.eval_batch_size, self.acc,
                           self.pad_id, self.progress)
        writer.event("probe", step=self.result.global_step, epoch=self.pos["epoch"], metric=o.metric,
                     at=round(100 * (self.pos["epoch"] + k / self.probes)), rows=len(self.probe_features),
                     metrics={name: v for name, v in metrics.items() if isinstance(v, int | float)})

    def run(self) -> TrainResult:
        writer = RunWriter(self.acc, self.run_dir)
        r = self.result
        writer.event("start", step=r.global_step, total_steps=self.total_steps, steps_per_epoch=self.steps_per_epoch,
                     epochs=self.epochs)
        try:
            self._steps(writer)
        except BaseException as e:  # a kill or an error still tells readers the run is over
            writer.event("error", step=r.global_step, error=f"{type(e).__name__}: {e}")
            raise
        finally:
            writer.close()
        if self.best_path.exists():
            _load_best(self.acc, self.model, self.best_path)
        return r

    def _steps(self, writer: RunWriter) -> None:
        from tqdm.auto import tqdm

        r, accum = self.result, self.opts.grad_accum
        bar = tqdm(total=self.total_steps, initial=r.global_step, desc="train", unit="step",
                   disable=not (self.progress and self.acc.is_local_main_process))
        stop = r.global_step >= self.total_steps
        while not stop and self.pos["epoch"] < self.epochs:
            n_batches, batches = self.epoch_iter(self.pos["epoch"], self.pos["batch"])
            while not stop:
                i = self.pos["batch"]
                group_start = (i // accum) * accum
                group_size = min(accum, n_batches - group_start)
                sync = i == group_start + group_size - 1
                t_fetch = time.perf_counter()
                items = next(batches)
                self.micro_step(items, sync, group_size, time.perf_counter() - t_fetch)
                self.pos["batch"] += 1
                if not sync:
                    continue
                r.global_step += 1
                fault_point("step", r.global_step)
                bar.update(1)
                stop = r.global_step >= self.total_steps
                if r.global_step % self.opts.log_every == 0 or stop:
                    self.log(writer, bar)
                end_of_epoch = self.pos["batch"] >= n_batches
                if end_of_epoch:
                    self.pos["epoch"] += 1
                    self.pos["batch"] = 0
                if self.val_features and (r.global_step % self.eval_every == 0 or stop) and self.evaluate(writer, bar):
                    r.stopped_early = stop = True
                if self.ckpt_every < NO_CHECKPOINTS and (r.global_step % self.ckpt_every == 0 or stop):
                    self.checkpoint()
                if end_of_epoch:
                    break
                if not stop and (k := self.probe_at.get(math.ceil(self.pos["batch"] / accum))):
                    self.probe(writer, k)
        bar.close()
        writer.event("end", step=r.global_step, best_step=r.best_step, best_metric=r.best_metric,
                     stopped_early=r.stopped_early)


def epochs_done(result: TrainResult, opts: TrainSpec) -> str:
    """The report's epochs row: what ran, and which setting ended it (train.max_steps overrides train.epochs)."""
    notes = []
    if opts.max_steps:
        notes.append(f"{result.global_step} steps of train.max_steps={opts.max_steps}")
    if result.stopped_early:
        notes.append(f"stopped early by train.patience={opts.patience}")
    if not notes:
        return f"{result.epochs_trained:.3g}"
    return f"{result.epochs_trained:.3g} ({'; '.join(notes)})"


def non_finite_loss(loss: float, step: int, opts: TrainSpec, precision: str) -> LmkError:
    """Stop a diverged run: every later step would only train NaN weights, and its metrics would be NaN."""
    return LmkError(
        f"the training loss became {loss} at optimizer step {step}: training diverged, so the run stops here "
        "(the weights are no longer numbers)",
        where=f"train.lr = {opts.lr:g}, train.precision = {opts.precision} (running {precision})",
        fix="lower train.lr (e.g. ten times), check the training data for empty or extreme rows, or train in "
        "full precision (train.precision=fp32); resume is pointless, start the run again")


def train(model, task, train_features: list[dict] | BatchSource, val_features: list[dict] | None, labels: list[str],
          opts: TrainSpec, seed: int, run_dir: Path, accelerator, pad_id: int, resume: bool = False,
          progress: bool = True, tuning=None, objective: Objective | None = None, probes: int = 0) -> TrainResult:
    """Train ``model`` in place and leave the best validation weights loaded in it. ``tuning`` (a
    ``tuning.Tuning``) supplies the optimizer groups and the method's hooks; None: plain groups, no hooks.
    ``objective`` (``training.objective``): what a micro-batch adds to the gradients; None: the task's loss.
    ``probes``: a search trial's validation looks per epoch (``_Loop.probe``); 0: none, or train.eval_every set."""
    loop = _Loop(model, task, train_features, val_features, labels, opts, seed, run_dir, accelerator, pad_id,
                 progress, tuning, objective, probes)
    if resume:
        loop.resume()
    with known_warnings_ignored():
        return loop.run()
