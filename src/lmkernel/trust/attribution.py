"""The attribution engine: word scores for one target (a probability the model gives) and their faithfulness.

A *target* turns a batch of logits into the probability being explained, one value per row (or one per
generated token): the predicted label's probability, an entity's tag probability, the next tokens'
probabilities. Two methods score words against it:

- ``ig``: integrated gradients (captum) on the input embedding layer's output, from a baseline where every
  word token is the pad token (special tokens kept); all interpolation steps run as one batch. It
  integrates the target's log-odds, not its probability: a confident model's probability is flat near
  its input, so a few integration points would miss where it changed. Scores sum, per word, the
  attributions of its tokens (positive pushes the target up).
- ``occlusion``: the drop in the target when one word's tokens are deleted; forward passes only, so it
  also works where gradients do not (an exported or quantized model).

Faithfulness (ERASER, DeYoung et al. 2020): *comprehensiveness* is the target's drop after deleting the
top 20 % of words, *sufficiency* its drop when only those are kept; both are also given for the same
number of random words (seeded, averaged over a few draws), so a user sees how much better than chance
the explanation is.
"""

from __future__ import annotations

import contextlib
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .explain_words import Encoded

Target = Callable[..., Any]  # (logits, lengths [B], log_odds=False) -> probabilities [B] or [B, K]


@dataclass
class Runner:
    """How to run the model on rows of token ids: pad id, precision, deletion style, batch size."""

    model: Any
    pad_id: int
    precision: str = "fp32"
    replace: bool = False  # delete words by replacing their tokens with the pad id (positions kept)
    batch_size: int = 32

    def autocast(self):
        import torch

        if self.precision != "bf16":
            return contextlib.nullcontext()
        device = next(self.model.parameters()).device.type if _has_params(self.model) else "cpu"
        return torch.autocast(device, dtype=torch.bfloat16)

    def device(self):
        import torch

        return next(self.model.parameters()).device if _has_params(self.model) else torch.device("cpu")

    def logits(self, input_ids, attention_mask):
        with self.autocast():
            return self.model(input_ids=input_ids, attention_mask=attention_mask).logits.float()

    def score(self, rows: list[list[int]], target: Target):
        """The target for each row (right-padded batches, no gradients): a [len(rows), ...] tensor."""
        import torch

        outs = []
        with torch.inference_mode():
            for start in range(0, len(rows), self.batch_size):
                chunk = rows[start:start + self.batch_size]
                width = max(max(map(len, chunk)), 1)
                ids = torch.full((len(chunk), width), self.pad_id, dtype=torch.long)
                mask = torch.zeros_like(ids)
                for i, r in enumerate(chunk):
                    ids[i, :len(r)] = torch.tensor(r, dtype=torch.long)
                    mask[i, :max(len(r), 1)] = 1
                lengths = mask.sum(-1)
                dev = self.device()
                outs.append(target(self.logits(ids.to(dev), mask.to(dev)), lengths.to(dev)).float().cpu())
        return torch.cat(outs)

    def drop(self, enc: Encoded, words: set[int]) -> list[int]:
        return enc.without(words, self.pad_id if self.replace else None)


def _has_params(model: Any) -> bool:
    try:
        next(model.parameters())
        return True
    except (AttributeError, StopIteration, TypeError):
        return False


def supports_ig(model: Any) -> bool:
    """Whether layer integrated gradients applies: a torch model with a floating input embedding layer."""
    get = getattr(model, "get_input_embeddings", None)
    try:
        layer = get() if get else None
    except (NotImplementedError, AttributeError):
        return False
    weight = getattr(layer, "weight", None)
    return weight is not None and weight.is_floating_point()


def ig_scores(runner: Runner, enc: Encoded, target: Target, n_steps: int) -> list[float]:
    """Per-word integrated gradients of a scalar target over the embedding layer's output, all steps in one batch.

    captum's ``LayerIntegratedGradients`` computes the same thing but first runs the whole model twice, on
    the text and on the baseline, only to read the layer's outputs; the embedding layer alone gives them,
    so this runs captum's ``IntegratedGradients`` on those outputs, fed back through a forward hook.
    """
    import torch
    from captum.attr import IntegratedGradients

    dev = runner.device()
    layer = runner.model.get_input_embeddings()
    ids = torch.tensor([enc.ids], dtype=torch.long, device=dev)
    with torch.no_grad():
        x = layer(ids)
        base = layer(torch.tensor([enc.without(set(enc.present), runner.pad_id)], dtype=torch.long, device=dev))

    def forward(embedded):
        rows = ids.expand(len(embedded), -1)  # the real ids: a decoder pools at the last non-pad one
        mask = torch.ones_like(rows)
        hook = layer.register_forward_hook(lambda _m, _i, _o: embedded)
        try:
            return _scalar(target(runner.logits(rows, mask), mask.sum(-1), log_odds=True))
        finally:
            hook.remove()

    with torch.enable_grad(), _frozen(runner.model):
        attr = IntegratedGradients(forward).attribute(x, baselines=base, n_steps=n_steps, internal_batch_size=n_steps)
    per_token = attr.float().sum(-1)[0].tolist()
    scores = [0.0] * len(enc.words)
    for value, w in zip(per_token, enc.word_of):
        if w >= 0:
            scores[w] += value
    return scores


@contextlib.contextmanager
def _frozen(model: Any):
    """No weight gradients while attributing: the backward pass then computes only the gradients that flow to
    the input, which skips the weight-gradient matmuls (about a third of a training step's work)."""
    params = [p for p in model.parameters() if p.requires_grad] if _has_params(model) else []
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


def occlusion_scores(runner: Runner, enc: Encoded, target: Target, full: Any = None):
    """Per word, the target's drop when that word is deleted: [words] (or [words, K] for a [B, K] target)."""
    import torch

    full = runner.score([enc.ids], target)[0] if full is None else full
    rows = [runner.drop(enc, {w}) for w in enc.present]
    dropped = runner.score(rows, target) if rows else torch.zeros((0,) + tuple(full.shape))
    out = torch.zeros((len(enc.words),) + tuple(full.shape))
    for i, w in enumerate(enc.present):
        out[w] = full - dropped[i]
    return out


def _scalar(values):
    return values.mean(-1) if values.dim() > 1 else values


def faithfulness(runner: Runner, enc: Encoded, target: Target, scores: list[float], *, fraction: float = 0.2,
                 draws: int = 3, seed: int = 0, full: float | None = None) -> dict[str, float | None]:
    """Comprehensiveness and sufficiency of the top ``fraction`` of words, and of as many random words
    (``full``: the target on the whole text, when the caller has it already)."""
    present = enc.present
    if not present:
        return {"comprehensiveness": None, "sufficiency": None, "comprehensiveness_random": None,
                "sufficiency_random": None}
    k = max(1, math.ceil(fraction * len(present) - 1e-9))
    top = set(sorted(present, key=lambda w: -scores[w])[:k])
    rng = random.Random(seed)
    randoms = [set(rng.sample(present, k)) for _ in range(draws)]
    everything = set(present)
    rows = [runner.drop(enc, top), runner.drop(enc, everything - top)]
    for r in randoms:
        rows += [runner.drop(enc, r), runner.drop(enc, everything - r)]
    if full is None:
        rows.insert(0, enc.ids)
    p = _scalar(runner.score(rows, target)).tolist()
    if full is None:
        full = p[0]
    else:
        p = [full] + p
    comp_r = [full - p[3 + 2 * i] for i in range(draws)]
    suff_r = [full - p[4 + 2 * i] for i in range(draws)]
    return {"comprehensiveness": full - p[1], "sufficiency": full - p[2],
            "comprehensiveness_random": sum(comp_r) / draws, "sufficiency_random": sum(suff_r) / draws}


def word_rows(enc: Encoded, scores: list[float]) -> list[dict[str, Any]]:
    """``[{"word", "start", "end", "score"}]`` for every word of the text (0 for words cut by truncation)."""
    return [{"word": enc.text[a:b], "start": a, "end": b, "score": round(float(s), 6)}
            for (a, b), s in zip(enc.words, scores)]
