"""distill: a student with fewer layers, initialised from the teacher's, trained on its logits.

Why this shape:

- The student is the teacher with most of its transformer blocks removed (DistilBERT's
  initialisation, Sanh et al. 2019, https://arxiv.org/abs/1910.01108): embeddings, the kept
  blocks and the task head are copied, so training starts close to the teacher instead of from
  scratch. Kept blocks are spread evenly from the first to the last (12 -> 3 keeps 0, 5 or 6, 11):
  the head was trained on the last block's output, the first block on the embeddings'.
- The loss is Hinton et al.'s (https://arxiv.org/abs/1503.02531):
  ``alpha * T^2 * KL(softmax(teacher/T) || softmax(student/T)) + (1 - alpha) * label loss``.
  For token tasks (logits ``(B, T, C)``) the KL is averaged over the positions whose label is
  not -100, the same positions the label loss counts.
- Training is the ordinary loop (``training.train``): ``Distiller`` wraps student and frozen
  teacher in one module whose forward returns the student's output with the distillation loss
  as ``.loss``, so the loop, its best-checkpoint choice and its evaluation work unchanged.
- The artifact is a plain transformers checkpoint with a smaller ``num_hidden_layers``.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import LmkError

TEMPERATURE = 2.0
ALPHA = 0.5  # weight of the KL term; 1 - ALPHA goes to the label loss
STUDENT_LR = 1e-4  # fewer layers recover faster with a higher rate than the teacher's 5e-5


def check_options(options: dict[str, Any]) -> None:
    """Raises LmkError for a missing or non-positive ``--layers`` or a negative ``--finetune``."""
    layers = options.get("layers")
    if layers is None:
        raise LmkError("--method distill needs --layers", where="--layers",
                       fix="the student's number of transformer layers, e.g. --layers 3")
    if int(layers) < 1:
        raise LmkError(f"--layers {layers} must be at least 1", where="--layers",
                       fix="the student's number of transformer layers, e.g. --layers 3")
    if options.get("finetune") is not None and int(options["finetune"]) < 1:
        raise LmkError(f"--finetune {options['finetune']} must be at least 1 for distill", where="--finetune",
                       fix="epochs of distillation training (default: the spec's train.epochs)")


def _layer_list_name(model: nn.Module) -> str:
    """Dotted name of the model's stack of transformer blocks: the ModuleList as long as
    config.num_hidden_layers.

    Raises:
        LmkError: no such list (an architecture this method cannot shorten).
    """
    n = getattr(getattr(model, "config", None), "num_hidden_layers", None)
    for name, module in model.named_modules():
        if isinstance(module, nn.ModuleList) and n is not None and len(module) == n:
            return name
    raise LmkError(f"--method distill cannot find the transformer layers of {type(model).__name__}",
                   where="--method distill",
                   fix="distill handles transformers models with config.num_hidden_layers blocks in one list "
                   "(BERT, MiniLM, RoBERTa, Llama)")


def layer_list(model: nn.Module) -> nn.ModuleList:
    """The model's stack of transformer blocks (see ``_layer_list_name``)."""
    return model.get_submodule(_layer_list_name(model))


def pick_layers(teacher_layers: int, student_layers: int) -> list[int]:
    """Evenly spread indices from the first block to the last."""
    if student_layers == 1:
        return [teacher_layers - 1]
    step = (teacher_layers - 1) / (student_layers - 1)
    return [round(i * step) for i in range(student_layers)]


def make_student(teacher: nn.Module, layers: int) -> tuple[nn.Module, list[int]]:
    """A deep copy of ``teacher`` keeping ``layers`` of its blocks; returns it and the kept indices.

    Raises:
        LmkError: ``layers`` is not fewer than the teacher has.
    """
    n = teacher_layers(teacher, layers)
    student = copy.deepcopy(teacher)
    name = _layer_list_name(student)
    blocks = student.get_submodule(name)
    kept = pick_layers(n, layers)
    chosen = [blocks[i] for i in kept]
    for new_index, block in enumerate(chosen):  # decoder blocks index their KV cache by layer
        for module in block.modules():
            if hasattr(module, "layer_idx"):
                module.layer_idx = new_index
    parent, _, attr = name.rpartition(".")
    setattr(student.get_submodule(parent), attr, nn.ModuleList(chosen))
    config = student.config
    config.num_hidden_layers = layers
    if isinstance(getattr(config, "layer_types", None), list):
        config.layer_types = [config.layer_types[i] for i in kept]
    for p in student.parameters():
        p.requires_grad_(True)  # a merged LoRA teacher comes back with frozen base weights
    return student, kept


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor | None,
            temperature: float) -> torch.Tensor:
    """T^2-scaled KL(teacher || student) at temperature T, over examples or labelled tokens."""
    c = student_logits.shape[-1]
    s, t = student_logits.reshape(-1, c), teacher_logits.reshape(-1, c)
    if student_logits.dim() == 3 and labels is not None:  # token task: only positions that count
        keep = labels.reshape(-1) != -100
        s, t = s[keep], t[keep]
    if s.shape[0] == 0:
        return student_logits.sum() * 0.0
    kl = nn.functional.kl_div(nn.functional.log_softmax(s.float() / temperature, -1),
                              nn.functional.log_softmax(t.float() / temperature, -1),
                              reduction="batchmean", log_target=True)
    return kl * temperature**2


class Distiller(nn.Module):
    """Student plus frozen teacher; ``forward`` is the student's, with the distillation loss.

    The teacher stays in eval mode (no dropout) whatever ``train()`` says, and has no trainable
    parameters, so the loop's optimizer and checkpoints only see the student.
    """

    def __init__(self, student: nn.Module, teacher: nn.Module, temperature: float = TEMPERATURE,
                 alpha: float = ALPHA):
        super().__init__()
        self.student, self.teacher = student, teacher
        self.temperature, self.alpha = temperature, alpha
        for p in self.teacher.parameters():
            p.requires_grad_(False)
        self.teacher.eval()

    def train(self, mode: bool = True) -> Distiller:
        super().train(mode)
        self.teacher.eval()
        return self

    def forward(self, **batch: Any) -> Any:
        out = self.student(**batch)
        with torch.no_grad():
            teacher_logits = self.teacher(**{k: v for k, v in batch.items() if k != "labels"}).logits
        kd = kd_loss(out.logits, teacher_logits, batch.get("labels"), self.temperature)
        out.loss = kd if out.loss is None else self.alpha * kd + (1 - self.alpha) * out.loss
        return out


def _features(source: Any, spec: Any) -> dict[str, list[dict]]:
    from ..data.read import read_data

    splits, _ = read_data(source.task, spec)
    return {name: source.task.encode(ds.examples, source.tokenizer, source.labels, spec.data.max_length)
            for name, ds in splits.items() if name in ("train", "validation")}


def train_student(distiller: Distiller, source: Any, spec: Any, epochs: int) -> None:
    """Distil with the ordinary training loop and the spec's data, batch size and seed."""
    import tempfile

    from ..device import make_accelerator
    from ..training import train

    features = _features(source, spec)
    opts = spec.train.model_copy(update={"epochs": epochs, "lr": STUDENT_LR, "max_steps": None, "patience": None,
                                         "eval_every": None, "keep_optimizer": False})
    accelerator = make_accelerator(opts.precision)
    with tempfile.TemporaryDirectory() as tmp:  # the loop's checkpoints and event files are not kept
        train(distiller, source.task, features["train"], features.get("validation"), source.labels, opts,
              spec.seed, Path(tmp), accelerator, source.tokenizer.pad_token_id or 0, progress=False)
    distiller.eval()


def fits(source: Any, options: dict[str, Any], spec: Any) -> None:
    """Before any output exists: the student must be smaller and there must be data to train on."""
    teacher_layers(source.model, int(options["layers"]))
    _need_spec(spec)


def teacher_layers(teacher: nn.Module, layers: int) -> int:
    """The teacher's layer count, checked against the student's.

    Raises:
        LmkError: ``layers`` is not fewer than the teacher has (or no layer list is found).
    """
    n = len(layer_list(teacher))
    if not 1 <= layers < n:
        raise LmkError(f"--layers {layers}: the teacher has {n} layers, a student needs fewer", where="--layers",
                       fix=f"pass --layers between 1 and {n - 1}")
    return n


def _need_spec(spec: Any) -> Any:
    if spec is None:
        raise LmkError("--method distill needs training data", where="--data",
                       fix="pass --data SPEC.yaml (a spec whose data.train the student learns from), or "
                       "distill a run folder written by `lmkernel run` (its spec.yaml is used)")
    return spec


def build(source: Any, tmp_dir: Path, *, layers: int, spec: Any = None, finetune: int | None = None) -> dict[str, Any]:
    """Write the distilled student's model folder for a loaded fp32 artifact.

    Raises:
        LmkError: no training data (``spec`` is None), or ``layers`` not fewer than the teacher's.
    """
    fits(source, {"layers": layers}, spec)
    student, kept = make_student(source.model, int(layers))
    epochs = int(finetune) if finetune else spec.train.epochs
    distiller = Distiller(student, source.model)
    train_student(distiller, source, spec, epochs)
    for p in source.model.parameters():
        p.requires_grad_(False)  # the teacher is measured afterwards, unchanged
    student.save_pretrained(str(tmp_dir), safe_serialization=True)
    params = sum(p.numel() for p in student.parameters())
    return {"weights": "distilled", "total_params": params, "trainable_params": params,
            "distillation": {"teacher_layers": len(layer_list(source.model)), "student_layers": int(layers),
                             "kept_layers": kept, "temperature": TEMPERATURE, "alpha": ALPHA,
                             "lr": STUDENT_LR, "epochs": epochs, "train_data": str(spec.data.train)}}


def load_model(model_dir: Path, card: dict[str, Any], task: Any) -> nn.Module:
    """A distilled student is a plain transformers checkpoint of the task's model class."""
    import transformers

    from ..models.resolve import load_pretrained

    return load_pretrained(getattr(transformers, task.auto_model), model_dir)
