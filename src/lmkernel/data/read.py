"""Read a spec's data: train and the evaluation splits (files or seeded hold-outs), and the label set;
or a labelled file for a saved model, with the columns it was trained on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import LmkError
from .splits import split_off


def read_data(task, spec: Any) -> tuple[dict[str, Any], list[str]]:
    """Read train and the evaluation splits (from files or seeded hold-outs) and the label set."""
    from ..tasks.base import Dataset

    d = spec.data
    train = task.read(d.train, d, None)
    if not train.examples:
        raise LmkError(f"no usable training rows in {d.train}", where=str(d.train),
                       fix="check the file and the data.* column settings (lmkernel fields data)")
    splits: dict[str, Dataset] = {"train": train}
    ratios = {name: r for name, r in (("validation", d.split.validation), ("test", d.split.test)) if r}
    stratum = getattr(task, "split_stratum", None)
    if ratios and stratum is not None:  # classification: each label in proportion (data/stratify.py)
        from .stratify import stratified_split

        kept, held = stratified_split(train.examples, ratios, spec.seed, stratum, str(d.train))
        splits = {"train": Dataset(kept, train.bad), **{k: Dataset(v, []) for k, v in held.items()}}
        ratios = {}
    for name, ratio in ratios.items():
        kept, held = split_off(splits["train"].examples, ratio, spec.seed + (name == "test"),
                               getattr(task, "split_group", None))
        splits["train"] = Dataset(kept, splits["train"].bad)
        splits[name] = Dataset(held, [])
    labels = task.infer_labels(splits["train"].examples)
    for name in ("validation", "test"):
        path = getattr(d, name)
        if path is not None:
            splits[name] = task.read(path, d, labels)
    known = getattr(task, "filter_known", None)
    for name in ("validation", "test"):
        if name in splits and known is not None:
            splits[name].examples = known(splits[name].examples, labels)
    return splits, labels


def read_labelled(model, path: Path, *, fmt: str = "auto", text_column: str | None = None,
                  label_column: str | None = None, on_bad_rows: str = "error") -> Any:
    """Read a labelled file for a saved model, with the columns it was trained on unless overridden."""
    from ..spec import DataSpec

    columns = model.card.get("data", {})
    data = DataSpec(train=Path(path), format=fmt, on_bad_rows=on_bad_rows,
                    text_column=text_column or columns.get("text_column", "text"),
                    label_column=label_column or columns.get("label_column", "label"),
                    document_boundary=columns.get("document_boundary", "auto"))
    return model.task.read(Path(path), data, model.labels)
