"""Few-shot classification (2 to 64 examples per class): SetFit's recipe, offline.

Contrastive sentence-pair tuning of the encoder (a bounded pair sampler: a fixed number of pairs per
example, half same-class, half other-class), then a logistic-regression head on the tuned, mean-pooled
unit vectors; or, with no training at all, the nearest class prototype. The method brings its own
training (the ``fit`` hook, ``fewshot_train.py``) and its own saved form (``save``/``load``,
``fewshot_model.py``); this file only declares it, so listing methods imports no torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from ..errors import LmkError
from .base import Context, Hooks
from .base import Options as _Base

NAME = "fewshot"
DEFAULT_LR = 2e-5  # SetFit's body learning rate: contrastive tuning moves a pretrained sentence encoder gently
TASKS = ("classification",)
NOT_FOR = "it classifies mean-pooled sentence vectors; other tasks have no single label per text"
MERGEABLE = False  # mean pooling is no transformers classifier class
SUMMARY = "few-shot classification (SetFit's recipe): contrastive pairs tune an encoder, then a logistic head"


class Options(_Base):
    head: Literal["logistic", "prototype"] = Field(
        "logistic", description="logistic: a logistic regression fitted on the tuned sentence vectors (SetFit's "
        "head). prototype: the nearest class mean by cosine; with the default epochs, no training at all.")
    epochs: int | None = Field(
        None, ge=0, le=100, description="Contrastive epochs, each over fresh pairs (default: 3 for head "
        "logistic, 0 for prototype; 0 leaves the encoder as it is). train.epochs and train.batch_size are not read.")
    pairs_per_example: int = Field(
        40, ge=2, le=1000, description="Pairs drawn per training example and epoch, half with an example of its "
        "class, half with one of another class (SetFit: 2 × num_iterations): the cost grows with the "
        "examples, not with the number of classes.")
    max_pairs: int | None = Field(2000, gt=0, description="Cap on the pairs per epoch (a balanced random "
                                  "subset, drawn afresh each epoch), so that many classes or many examples per "
                                  "class stay fast; null: no cap.")
    batch_size: int = Field(16, gt=0, description="Pairs per optimizer step (two texts each).")
    loss: Literal["cosine", "cosent"] = Field(
        "cosine", description="cosine: squared error between the pair's cosine and 1 or 0 (SetFit's "
        "CosineSimilarityLoss); cosent: CoSENT's ranking of the pairs' cosines.")
    logistic_c: float = Field(1.0, gt=0, description="Inverse regularisation strength of the logistic head "
                              "(scikit-learn's C).")
    prototype_scale: float = Field(20.0, gt=0, description="Prototype head: logits are cosine × this scale, "
                                   "so the probabilities are a softmax over scaled cosines.")

    def contrastive_epochs(self) -> int:
        """The epochs that run: the stated ones, else 3 (logistic) or 0 (prototype)."""
        return self.epochs if self.epochs is not None else (0 if self.head == "prototype" else 3)


def apply(model: Any, opts: Options, ctx: Context) -> Any:
    """The few-shot classifier on the model's encoder, every encoder weight trainable."""
    from .fewshot_model import from_sequence_classifier, is_decoder

    if is_decoder(model):
        raise LmkError(f"tuning.method 'fewshot' needs an encoder backbone; {model.config.model_type!r} is a causal "
                       "language model", where="model.name",
                       fix="use an encoder (model.name: minilm, or a local BERT-like folder), or another "
                       "tuning.method (lora) for a decoder")
    classifier = from_sequence_classifier(model)
    for p in classifier.parameters():
        p.requires_grad_(True)
    return classifier


def _ignored(spec: Any, continue_from: Any) -> list[tuple[str, str]]:
    """(spec key, fix) for each setting the user gave that the few-shot recipe has no place for."""
    tr = spec.train
    standard = "or train with the standard loop (tuning.method: full or lora)"
    return [(key, fix) for key, asked, fix in (
        ("train.class_weights", tr.class_weights != "none", "remove it: the pairs are half same-class, half "
         f"other-class whatever the class sizes, and the head is fitted unweighted; {standard}"),
        ("train.adversarial", tr.adversarial.method != "none", f"remove it, {standard}"),
        ("train.rdrop", bool(tr.rdrop), f"remove it, {standard}"),
        ("train.label_smoothing", bool(tr.label_smoothing), f"remove it, {standard}"),
        ("train.grad_accum", tr.grad_accum != 1, "remove it; pairs per optimizer step are "
         "tuning.fewshot.batch_size"),
        ("train.eval_every", tr.eval_every is not None, "remove it: a few-shot run evaluates once, at the end"),
        ("train.patience", tr.patience is not None, "remove it: a few-shot run has no evaluations to stop on"),
        ("continual", getattr(spec, "continual", None) is not None, f"remove the continual: section, {standard}"),
        ("--continue-from", continue_from is not None, "drop --continue-from (a few-shot run starts from its base "
         f"model), {standard}"),
    ) if asked]


def check_spec(spec: Any, continue_from: Any = None) -> None:
    """Refuse, before any training, what this method would silently ignore: it trains through its own ``fit``
    (pairs, then a fitted head), not the standard loop that reads these settings."""
    from ..errors import SpecErrors

    errors = [LmkError(f"{key}: tuning.method fewshot trains contrastive pairs and then fits a head, so it cannot "
                       f"honour {key}", where=key, fix=fix) for key, fix in _ignored(spec, continue_from)]
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise SpecErrors(errors, "the spec (tuning.method: fewshot)")


def _fit(*args: Any, **kwargs: Any) -> Any:
    from .fewshot_train import fit

    return fit(*args, **kwargs)


def _save(model: Any, directory: Path, merge: bool) -> str:
    from .fewshot_model import save

    return save(model, directory, merge)


def _load(base: Any, directory: Path, card: dict[str, Any]) -> Any:
    from .fewshot_model import load

    return load(base, directory, card)


HOOKS = Hooks(fit=_fit, save=_save, load=_load, check_spec=check_spec)
