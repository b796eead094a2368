"""One stage of continual learning, as the pipeline sees it: what it adds before, during and after training.

``Stage.begin`` loads and checks the run to continue from; ``labels`` extends the label set (old labels keep
their indices); ``build_model`` grows the old model's head; ``replay_features`` mixes the stored examples of
the old classes into the training data; ``objective`` adds the EWC penalty; ``finish`` measures the accuracy
matrix row, updates the buffer and the Fisher, and returns the card entry, the report section and the files
the artifact gains.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import LmkError
from . import ewc, state
from .metrics import markdown, summarise
from .options import ContinualSpec


def _check_previous(card: dict[str, Any], model_dir: Path, spec: Any) -> None:
    """Only a classifier from the same base model continues: another task or tokenizer cannot share a head."""
    where = str(model_dir / "lmkernel.json")
    if card["task"] != "classification":
        raise LmkError(f"--continue-from {model_dir.parent} is a {card['task']} run; continual learning extends "
                       "a classification run", where=where,
                       fix="pass a run trained with task.type: classification, or drop --continue-from")
    if spec.task.type != "classification":
        raise LmkError(f"continual learning (--continue-from) is for classification, not {spec.task.type}",
                       where="task.type", fix="set task.type: classification, or drop --continue-from")
    base = card.get("base_model")
    if base is not None and not _same_model(base, spec.model.name):
        raise LmkError(f"--continue-from {model_dir.parent} was trained from base model {base!r}, but this spec's "
                       f"model.name is {spec.model.name!r}", where="model.name",
                       fix=f"set model.name: {base} (a continued run keeps the model and tokenizer it extends), or "
                       "drop --continue-from to train the other model from scratch")


def _same_model(a: str, b: str | None) -> bool:
    from ..models.resolve import resolve_model_path

    if b is None:
        return False
    if a == b:
        return True
    try:
        return resolve_model_path(a).resolve() == resolve_model_path(b).resolve()
    except LmkError:
        return False


def check_tokenizer(old, new, model_dir: Path) -> None:
    """The spec's tokenizer must split text as the previous run's did, or the old weights read other tokens."""
    if old.get_vocab() != new.get_vocab():
        raise LmkError(f"the tokenizer of model.name differs from the one --continue-from {model_dir.parent} was "
                       f"trained with ({len(old)} vs {len(new)} tokens)", where="model.name",
                       fix="continue with the same base model and tokenizer as the previous run, or drop "
                       "--continue-from")


class Stage:
    def __init__(self, opts: ContinualSpec, seed: int, previous: Any = None, model_dir: Path | None = None):
        self.opts, self.seed, self.previous, self.model_dir = opts, seed, previous, model_dir
        card = previous.card if previous is not None else {}
        self.old_labels: list[str] = list(card.get("labels", []))
        self.history = state.history(card)
        self.state = (state.load(model_dir) if model_dir is not None else None) or state.State()
        self.ewc = ewc.load(model_dir) if model_dir is not None and opts.ewc else None
        self.replayed = 0
        self.own_validation: list = []  # this stage's validation examples, before old tasks' rows join them

    @classmethod
    def begin(cls, spec: Any, continue_from: str | Path | None) -> Stage:
        opts = spec.continual or ContinualSpec()
        if continue_from is None:
            if spec.task.type != "classification":
                raise LmkError(f"continual: is for classification runs, not {spec.task.type}", where="continual",
                               fix="remove the continual: section, or set task.type: classification")
            return cls(opts, spec.seed)
        from ..artifact import find_model_dir, load, read_card

        model_dir = find_model_dir(continue_from)
        _check_previous(read_card(model_dir), model_dir, spec)
        previous = load(model_dir, backend="exact")
        stage = cls(opts, spec.seed, previous, model_dir)
        if not stage.state.tasks:
            print(f"note: {continue_from} was trained without continual:, so it has no replay buffer, Fisher or "
                  "held-out data: its classes may be forgotten and the accuracy matrix starts here")
        return stage

    def labels(self, new: list[str]) -> list[str]:
        """The old labels in their order, then this stage's new ones."""
        return self.old_labels + [lab for lab in new if lab not in self.old_labels]

    def build_model(self, task: Any, model_path: Path, tokenizer: Any, labels: list[str]) -> Any:
        if self.previous is None:
            return task.build_model(model_path, labels)
        from .head import grow

        check_tokenizer(self.previous.tokenizer, tokenizer, self.model_dir)
        model = grow(self.previous.model, self.old_labels, labels)
        model.train()
        return model

    def extend_features(self, splits: dict, features: dict[str, list], task: Any, tokenizer: Any,
                        labels: list[str], max_length: int) -> None:
        """Train gains the replay buffer (when the method replays); validation gains the old tasks' validation
        rows, so the best checkpoint is the best on every task so far, not the one before replay restored them."""
        from ..tasks.base import Example

        if self.opts.replay and self.state.replay:
            rows = [Example(text, lab, "replay buffer", 0) for lab, texts in self.state.replay.items()
                    for text in texts]
            self.replayed = len(rows)
            features["train"] = features["train"] + task.encode(rows, tokenizer, labels, max_length)
        val = splits.get("validation")
        self.own_validation = list(val.examples) if val is not None else []
        old = [Example(x, y, f"validation of {t.name}", i + 1) for t in self.state.tasks
               for i, (x, y) in enumerate(t.validation) if y in labels]
        if old and features.get("validation"):  # examples too: the error analysis reads them by feature index
            val.examples = val.examples + old
            features["validation"] = features["validation"] + task.encode(old, tokenizer, labels, max_length)

    def objective(self, inner: Any = None) -> Any:
        """``inner`` (default: the plain loss) plus the EWC penalty of the stored Fisher; None without one."""
        from ..training.objective import plain, with_penalty

        if self.ewc is None or not self.opts.ewc_lambda:
            return inner
        return with_penalty(inner or plain, ewc.penalty(*self.ewc, self.opts.ewc_lambda))

    def finish(self, model: Any, task: Any, tokenizer: Any, splits: dict, labels: list[str], train_features: list,
               evaluate_fn: Any, run_dir: Path, max_length: int, pad_id: int, final_eval: bool) -> Finished:
        """After training: this stage's task, the accuracy matrix row, the new buffer and Fisher."""
        o = self.opts
        held = splits.get("test") if final_eval and splits.get("test") else splits.get("validation")
        rows = [(e.text, e.label) for e in held.examples] if held is not None else []
        val = [(e.text, e.label) for e in self.own_validation]
        new_labels = [lab for lab in labels if lab not in self.old_labels]
        name = o.task_name or f"stage {len(self.history['stages']) + 1}"
        self.state.tasks.append(state.TaskData(name, new_labels, state.cap_rows(rows, o.heldout_per_task, self.seed),
                                               state.cap_rows(val, o.heldout_per_task, self.seed)))
        row = [self._accuracy(t, task, tokenizer, labels, max_length, evaluate_fn) for t in self.state.tasks]
        new_rows = [(e.text, e.label) for e in splits["train"].examples]
        self.state.replay = state.update_buffer(self.state.replay, new_rows, o.replay_per_class, self.seed)
        fisher = None
        if o.ewc:
            current = ewc.fisher_diagonal(model, task, train_features, pad_id, o.fisher_samples, self.seed)
            fisher = ewc.combine(self.ewc[0], current, o.ewc_decay) if self.ewc is not None else current
        matrix = [list(r) for r in self.history["matrix"]] + [row]
        entry = {"matrix": matrix, "tasks": [t.name for t in self.state.tasks], "options": o.model_dump(mode="json"),
                 "stages": self.history["stages"] + [{
                     "stage": len(self.history["stages"]) + 1, "method": o.method, "run": str(run_dir),
                     "continued_from": str(self.model_dir.parent) if self.model_dir else None,
                     "new_labels": new_labels, "train_rows": len(new_rows), "replayed_rows": self.replayed}]}
        s = summarise(matrix)
        entry["summary"] = {"acc": s.acc, "bwt": s.bwt, "forgetting": s.forgetting}
        anchor = {n: p.detach() for n, p in model.named_parameters()} if fisher is not None else {}
        return Finished(entry, markdown(matrix, entry["tasks"], [st["method"] for st in entry["stages"]]),
                        self.state, fisher, anchor)

    def _accuracy(self, t: state.TaskData, task: Any, tokenizer: Any, labels: list[str], max_length: int,
                  evaluate_fn: Any) -> float | None:
        from ..tasks.base import Example

        known = [(x, y) for x, y in t.heldout if y in labels]
        if not known:
            return None
        features = task.encode([Example(x, y, t.name, 0) for x, y in known], tokenizer, labels, max_length)
        return float(evaluate_fn(features)["accuracy"])


class Finished:
    """What a finished stage hands the pipeline: the card entry, the report section, and the artifact files."""

    def __init__(self, entry: dict, section: str, st: state.State, fisher: dict | None, anchor: dict):
        self.entry, self.section, self._state, self._fisher, self._anchor = entry, section, st, fisher, anchor

    def write(self, directory: Path) -> None:
        """Called with the artifact's temporary folder, before it is renamed into place."""
        state.save(directory, self._state)
        if self._fisher is not None:
            ewc.save(directory, self._fisher, self._anchor)
