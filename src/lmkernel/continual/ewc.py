"""Elastic weight consolidation (Kirkpatrick et al. 2017): a diagonal Fisher of the old tasks and the
weights they were learned with, and the penalty λ/2 · Σ F_i (θ_i − θ*_i)² that keeps the important ones put.

The penalty is a training objective (``training.objective.with_penalty``), so the loop never learns of it.
Weights are matched by name; a classifier head that grew new rows is compared on its old rows only (the new
classes have no Fisher yet).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

EWC_FILE = "continual_ewc.safetensors"


def _comparable(p, f) -> bool:
    """``p`` is the stored tensor's shape, or the same with more leading rows (a grown head)."""
    return p.dim() == f.dim() and p.shape[1:] == f.shape[1:] and p.shape[0] >= f.shape[0]


def penalty(fisher: dict[str, Any], anchor: dict[str, Any], lam: float):
    """``model -> λ/2 · Σ F (θ − θ*)²`` over the trainable weights that have a stored Fisher (None if none)."""
    moved: dict[str, tuple[Any, Any]] = {}

    def term(model):
        total = None
        for name, p in model.named_parameters():
            if not p.requires_grad or name not in fisher or not _comparable(p, fisher[name]):
                continue
            if name not in moved or moved[name][0].device != p.device:
                moved[name] = (fisher[name].to(p.device), anchor[name].to(p.device))
            f, a = moved[name]
            cur = p[: f.shape[0]] if p.shape != f.shape else p
            part = (f * (cur - a).pow(2)).sum()
            total = part if total is None else total + part
        return None if total is None else total * (lam / 2)

    return term


def fisher_diagonal(model, task, features: list[dict], pad_id: int, samples: int, seed: int) -> dict[str, Any]:
    """The empirical diagonal Fisher E[(∂ log p(y|x)/∂θ)²], one backward per example on a seeded sample of
    ``features`` (gold labels), in eval mode so dropout does not add noise."""
    import torch

    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    fisher = {n: torch.zeros_like(p, dtype=torch.float32) for n, p in params.items()}
    chosen = random.Random(seed).sample(range(len(features)), min(samples, len(features)))
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    for i in chosen:
        batch = {k: v.to(device) for k, v in task.collate([features[i]], pad_id).items()}
        model.zero_grad(set_to_none=True)
        model(**batch).loss.backward()
        for n, p in params.items():
            if p.grad is not None:
                fisher[n] += p.grad.detach().float().pow(2)
    model.zero_grad(set_to_none=True)
    model.train(was_training)
    return {n: f / max(len(chosen), 1) for n, f in fisher.items()}


def combine(old: dict[str, Any], new: dict[str, Any], decay: float) -> dict[str, Any]:
    """Online EWC: ``decay · F_old + F_new``, the old head's rows added into the grown head's first rows."""
    out = dict(new)
    for name, f_old in old.items():
        f_new = new.get(name)
        if f_new is None or not _comparable(f_new, f_old):
            continue
        grown = f_new.clone()
        grown[: f_old.shape[0]] += decay * f_old
        out[name] = grown
    return out


def save(directory: Path, fisher: dict[str, Any], anchor: dict[str, Any]) -> None:
    """Fisher and anchor weights as one safetensors file (``fisher/<name>``, ``anchor/<name>``), atomically."""
    from safetensors.torch import save_file

    from ..fsutil import atomic_write

    tensors = {f"fisher/{n}": f.detach().cpu().contiguous() for n, f in fisher.items()}
    tensors.update({f"anchor/{n}": anchor[n].detach().cpu().float().contiguous() for n in fisher})
    atomic_write(Path(directory) / EWC_FILE, lambda p: save_file(tensors, str(p)))


def load(directory: Path) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """(fisher, anchor) stored in an artifact, None when it has none."""
    path = Path(directory) / EWC_FILE
    if not path.is_file():
        return None
    from safetensors.torch import load_file

    from ..errors import LmkError

    try:
        tensors = load_file(str(path))
    except Exception as e:  # noqa: BLE001 - safetensors raises several types for a damaged file
        raise LmkError(f"the EWC state {path} is unreadable: {e}", where=str(path),
                       fix="the artifact is damaged; re-run the previous stage, or continue with continual.method: "
                       "replay") from e
    fisher = {k[len("fisher/"):]: v for k, v in tensors.items() if k.startswith("fisher/")}
    anchor = {k[len("anchor/"):]: v for k, v in tensors.items() if k.startswith("anchor/")}
    if set(fisher) != set(anchor):
        raise LmkError(f"the EWC state {path} has Fisher and anchor weights for different parameters",
                       where=str(path), fix="the artifact is damaged; re-run the previous stage")
    return fisher, anchor
