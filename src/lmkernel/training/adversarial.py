"""Adversarial training in embedding space: FGM, PGD and FreeLB as training objectives.

Each method adds a perturbation ``delta`` (B, T, H) to the output of the word-embedding layer through a
forward hook and wraps an inner objective (plain, label-smoothed, R-Drop, ...), so it composes with the
others instead of re-implementing the loss. Norms are per example over the sequence (padding masked),
as in Miyato et al. 2017 (FGM), Madry et al. 2018 (PGD, projected steps) and Zhu et al. 2020 (FreeLB,
K ascent steps whose parameter gradients accumulate). A perturbed pass whose loss is not finite is
skipped and counted (the NaN guard): it would poison the weights, while the clean pass is still good.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator

from ..adversarialspec import AdversarialSpec


class _NonFinite(Exception):
    """A perturbed loss that is NaN or infinite: its pass is skipped."""


def _guarded(backward):
    import torch

    def run(loss):
        if not bool(torch.isfinite(loss.detach()).all()):
            raise _NonFinite
        backward(loss)

    return run


class _Perturbation:
    """Adds ``delta`` to the word-embedding output while installed; R-Drop's doubled batch gets it repeated."""

    def __init__(self, embeddings, batch: dict) -> None:
        import torch

        self.mask = batch["attention_mask"].to(torch.float32)  # (B, T)
        b, t = batch["input_ids"].shape
        weight = embeddings.weight
        self.shape, self.device = (b, t, weight.shape[1]), weight.device
        self.delta: torch.Tensor | None = None
        self.handle = embeddings.register_forward_hook(self._hook)

    def _hook(self, module, inputs, output):
        d = self.delta
        if d is None:
            return output
        if d.shape[0] != output.shape[0]:  # the batch went through twice in one forward (R-Drop)
            d = d.repeat(output.shape[0] // d.shape[0], 1, 1)
        return output + d.to(output.dtype)

    def set(self, values, grad: bool) -> None:
        self.delta = values.detach().clone().requires_grad_(grad)

    def zeros(self):
        import torch

        return torch.zeros(self.shape, device=self.device)

    def grad(self):
        return None if self.delta is None else self.delta.grad


@contextlib.contextmanager
def _perturbing(step) -> Iterator[_Perturbation]:
    embeddings = step.unwrap().get_input_embeddings()
    pert = _Perturbation(embeddings, step.batch)
    try:
        yield pert
    finally:
        pert.handle.remove()


def _unit(g, mask):
    """g over its per-example L2 norm (padding masked); a zero gradient stays zero."""
    g = g * mask[..., None]
    return g / g.flatten(1).norm(dim=1).clamp_min(1e-12)[:, None, None]


def _project(d, eps: float):
    """d pulled back into the per-example L2 ball of radius eps."""
    norm = d.flatten(1).norm(dim=1).clamp_min(1e-12)
    return d * (eps / norm).clamp(max=1.0)[:, None, None]


def _finite(g) -> bool:
    import torch

    return g is not None and bool(torch.isfinite(g).all())


class Adversarial:
    """An objective: ``inner`` on clean inputs plus the chosen method's perturbed passes, with counters."""

    def __init__(self, inner, opts: AdversarialSpec) -> None:
        self.inner, self.opts = inner, opts
        self.stats = {"adversarial batches": 0, "adversarial passes skipped (non-finite loss)": 0}
        self._run = {"fgm": self._fgm, "pgd": self._pgd, "freelb": self._freelb}[opts.method]

    def __call__(self, step):
        if step.global_step <= self.opts.warmup_steps:
            return self.inner(step)
        self.stats["adversarial batches"] += 1
        with _perturbing(step) as pert:
            return self._run(step, pert)

    def _skip(self) -> None:
        self.stats["adversarial passes skipped (non-finite loss)"] += 1

    def _train_pass(self, step, scale: float = 1.0):
        """``inner`` on the perturbed input, its gradients added (scaled); None when its loss is not finite."""
        backward = step.backward if scale == 1.0 else (lambda loss: step.backward(loss * scale))
        try:
            return self.inner(dataclasses.replace(step, backward=_guarded(backward)))
        except _NonFinite:
            self._skip()
            return None

    def _ascent_grad(self, step, pert):
        """The gradient of ``inner``'s loss with respect to delta only (the weights' gradients untouched)."""
        import torch

        found = []

        def backward(loss):
            if not bool(torch.isfinite(loss.detach()).all()):
                raise _NonFinite
            if loss.requires_grad:
                g = torch.autograd.grad(loss, pert.delta, allow_unused=True)[0]
                if g is not None:
                    found.append(g)

        try:
            self.inner(dataclasses.replace(step, backward=backward))
        except _NonFinite:
            return None
        return sum(found) if found else None

    def _fgm(self, step, pert):
        pert.set(pert.zeros(), grad=True)
        out = self.inner(step)  # clean pass: the weights' gradients and delta's
        g = pert.grad()
        if not _finite(g):
            self._skip()
            return out
        pert.set(self.opts.epsilon * _unit(g, pert.mask), grad=False)
        self._train_pass(step)
        return out

    def _pgd(self, step, pert):
        o = self.opts
        pert.set(pert.zeros(), grad=True)
        out = self.inner(step)
        g, delta = pert.grad(), pert.zeros()
        for k in range(o.steps):
            if not _finite(g):
                self._skip()
                break
            delta = _project(delta + o.alpha * _unit(g, pert.mask), o.epsilon)
            last = k == o.steps - 1
            pert.set(delta, grad=not last)
            if last:
                self._train_pass(step)
            else:
                g = self._ascent_grad(step, pert)
        return out

    def _freelb(self, step, pert):
        import torch

        o = self.opts
        lengths = pert.mask.sum(1).clamp_min(1) * pert.shape[2]  # L * d per example
        init = torch.empty(pert.shape, device=pert.device).uniform_(-1, 1) * pert.mask[..., None]
        delta = _project(init * (o.alpha / lengths.sqrt())[:, None, None], o.epsilon)
        out = None
        for k in range(o.steps):
            pert.set(delta, grad=True)
            got = self._train_pass(step, scale=1.0 / o.steps)
            if got is None:
                break
            out, g = got, pert.grad()
            if k < o.steps - 1:
                if not _finite(g):
                    self._skip()
                    break
                delta = _project(delta + o.alpha * _unit(g, pert.mask), o.epsilon)
        if out is None:  # the first perturbed pass was not finite: train this step on clean inputs
            pert.delta = None
            out = self.inner(step)
        return out
