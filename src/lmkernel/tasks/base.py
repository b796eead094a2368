"""The Task seam: everything that differs between tasks, behind one small protocol.

The training loop, the report and the artifact only talk to a task through these methods, so a
new task (NER, generation, ...) is one new file plus one ``register`` line.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol

from ..data.readers import BadRow

Feature = dict[str, Any]  # one encoded example: input_ids, labels, ... (lists, not tensors)
Batch = dict[str, Any]  # collated tensors ready for model(**batch)


@dataclass
class Example:
    text: str
    label: str | None
    file: str
    line: int


@dataclass
class Dataset:
    """Validated examples of one split plus the rows that were rejected."""

    examples: list[Example]
    bad: list[BadRow]


class Task(Protocol):
    name: ClassVar[str]
    auto_model: ClassVar[str]  # transformers Auto* class that loads this task's artifacts
    metric_names: ClassVar[tuple[str, ...]]  # scalar validation metrics train.metric may name

    def read(self, path: Path, *, fmt: str, text_column: str, label_column: str,
             labels: list[str] | None, on_bad_rows: str) -> Dataset: ...

    def infer_labels(self, examples: list[Example]) -> list[str]: ...

    def build_model(self, path: Path, labels: list[str]) -> Any: ...

    def encode(self, examples: list[Example], tokenizer: Any, labels: list[str], max_length: int) -> list[Feature]: ...

    def collate(self, features: list[Feature], pad_id: int) -> Batch: ...

    def step_outputs(self, logits: Any, batch: Batch) -> dict[str, list]: ...

    def metrics(self, outputs: dict[str, list], labels: list[str]) -> dict[str, Any]: ...

    def predict(self, model: Any, tokenizer: Any, texts: list[str], labels: list[str], *,
                max_length: int, batch_size: int) -> list[dict[str, Any]]: ...
