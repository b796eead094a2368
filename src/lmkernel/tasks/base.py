"""The Task seam: everything that differs between tasks, behind one small protocol.

The training loop, the report and the artifact only talk to a task through these methods, so a
new task (NER, generation, ...) is one new file plus one ``register`` line.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

from ..data.readers import BadRow
from ..specmodel import SpecModel


def no_grad(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``torch.no_grad()`` as a decorator that imports torch when called, so task files (and the spec,
    which reads their options) import without torch."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        import torch

        with torch.no_grad():
            return fn(*args, **kwargs)

    return wrapper


class TaskOptions(SpecModel):
    """A task's ``task:`` section. ``type`` names the task: the spec's ``task`` is the union of every
    registered task's options, told apart by ``type``; strict types, unknown keys are errors (``SpecModel``)."""

    type: str

    def options(self) -> dict[str, Any]:
        """The options without ``type``, as stored in the artifact card (``task_options``)."""
        return self.model_dump(mode="json", exclude={"type"})


@dataclass(frozen=True)
class TaskInfo:
    """What a task file registers (``tasks.register``): read by the spec, the CLI, the loop, the report
    and the server.

    Attributes:
        name: the ``task.type`` value.
        cls: the task class (``Task`` below), made with an ``options`` instance.
        options: its ``TaskOptions`` subclass, with ``type: Literal[name]``.
        metrics: scalar validation metrics ``train.metric`` may name; the first is the default, and these
            are the ones the CLI prints and TensorBoard records.
        tuning: the default ``tuning.method``.
        decoder_tuning: the default ``tuning.method`` when ``model.name`` is a causal LM, if it differs
            (a task head on a decoder of hundreds of millions of parameters: LoRA, not full fine-tuning).
        final_metrics: metrics of the final evaluation only (slow: BLEU, ROUGE), printed after the others.
        serving: ``("module:router", "module:PredictorClass")``: the endpoints and the predictor that serve
            its artifacts (import paths, so the spec never imports FastAPI); None: not served.
    """

    name: str
    cls: type
    options: type[TaskOptions]
    metrics: tuple[str, ...]
    tuning: str = "full"
    decoder_tuning: str | None = None
    serving: tuple[str, str] | None = None
    final_metrics: tuple[str, ...] = ()

    @property
    def metric(self) -> str:
        return self.metrics[0]

    def default_tuning(self, decoder: bool) -> str:
        """The ``tuning.method`` a spec gets when it names none (``decoder``: the backbone is a causal LM)."""
        return self.decoder_tuning if decoder and self.decoder_tuning else self.tuning

    @property
    def shown(self) -> tuple[str, ...]:
        """What the CLI prints, in order: the validation metrics, the loss, the final-only ones."""
        return tuple(dict.fromkeys(self.metrics + ("loss",) + self.final_metrics))


Feature = dict[str, Any]  # one encoded example: input_ids, labels, ... (lists, not tensors)
Batch = dict[str, Any]  # collated tensors ready for model(**batch)


@dataclass
class Example:
    """One validated record. ``text`` is what a person would read (and what the [UNK] check
    looks at); ``label`` is the task's target (a class name, a tag list, None for LM tasks);
    ``fields`` holds task-specific parts (tokens, messages, source/target)."""

    text: str
    label: Any
    file: str
    line: int
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass
class Dataset:
    """Validated examples of one split plus the rows that were rejected."""

    examples: list[Example]
    bad: list[BadRow]


class Task(Protocol):
    """What a task implements. Instances are made by ``tasks.get_task(name, options)`` with the
    ``task:`` section of the spec (``self.options``: the task's ``TaskOptions``).

    Optional hooks, looked up with ``getattr`` by the pipeline:

    - ``filter_known(examples, labels) -> list[Example]``: drop held-out examples whose label
      never occurs in train (classification).
    - ``generation_metrics(model, tokenizer, examples, batch_size) -> dict``: metrics that need
      generation (BLEU, ROUGE), computed in the final evaluation only because they are slow.
    - ``generate(model, tokenizer, prompts, **sampling)``: text generation for causal LM tasks.
    - ``forward(model, batch) -> output``: the training loop's forward when plain
      ``model(**batch)`` wastes work (the chat task runs a prompt prefix shared by the batch once).
    - ``report_sections(train, labels) -> list[str]``: markdown the run's report shows after its
      data table (classification: the words that mark each label).
    - ``split_group(example) -> hashable``: ``data.split`` hold-outs keep examples of one group on one
      side (qa: the questions of one context).
    - ``embed(model, tokenizer, texts, max_length=, batch_size=) -> np.ndarray``: float32 unit sentence
      vectors (the embedding task); ``Model.embed`` and the knowledge embedder call it.
    - ``save_files(directory, card)``: extra files the artifact holds beside the weights (the embedding
      task: the sentence-transformers module files).
    """

    name: ClassVar[str]
    auto_model: ClassVar[str]  # transformers Auto* class that loads this task's artifacts

    def __init__(self, options: Any) -> None: ...

    def read(self, path: Path, data: Any, labels: list[str] | None) -> Dataset:
        """Read and validate one split. ``data`` is the spec's ``DataSpec`` (format, columns,
        on_bad_rows); ``labels`` is None for train, else the training label set."""

    def infer_labels(self, examples: list[Example]) -> list[str]: ...

    def build_model(self, path: Path, labels: list[str]) -> Any: ...

    def encode(self, examples: list[Example], tokenizer: Any, labels: list[str], max_length: int) -> list[Feature]: ...

    def collate(self, features: list[Feature], pad_id: int) -> Batch: ...

    def step_outputs(self, out: Any, batch: Batch) -> dict[str, list]:
        """Per-example results of one eval forward (``out`` is the model output: logits, loss)."""

    def metrics(self, outputs: dict[str, list], labels: list[str]) -> dict[str, Any]:
        """Metrics from the gathered step outputs. A ``loss`` key here wins over the loop's
        per-example mean (LM tasks weight the loss by tokens)."""

    def predict(self, model: Any, tokenizer: Any, texts: list[str], labels: list[str], *,
                max_length: int, batch_size: int) -> list[dict[str, Any]]: ...
