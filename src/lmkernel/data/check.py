"""The data half of ``lmkernel validate``: files, columns, rows and labels, judged on a bounded sample.

The first ``SAMPLE_ROWS`` records of each file go through the very readers ``run`` uses, so validate
rejects what ``run`` would reject seconds later, without reading a large file to its end. A check
that needs the whole training file (at least two labels; held-out labels seen in training) runs only
when the sample holds the whole file.
"""

from __future__ import annotations

from itertools import islice
from pathlib import Path
from typing import Any

from ..errors import LmkError, SpecErrors
from .files import sampling

SAMPLE_ROWS = 1000


def check_data(spec: Any, limit: int = SAMPLE_ROWS) -> list[str]:
    """One line per data file saying what was read; every problem found is raised at once."""
    errors: list[LmkError] = []
    notes: list[str] = []
    check = _check_corpus if spec.task.type == "pretrain" else _check_rows
    check(spec, limit, notes, errors)
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise SpecErrors(errors, "the data")
    return notes


def _files(spec: Any) -> list[tuple[str, Path]]:
    d = spec.data
    return [(f"data.{name}", getattr(d, name)) for name in ("train", "validation", "test")
            if getattr(d, name) is not None]


def _check_rows(spec: Any, limit: int, notes: list[str], errors: list[LmkError]) -> None:
    from ..tasks import get_task

    task = get_task(spec.task.type, spec.task)
    labels: list[str] | None = None
    for key, path in _files(spec):
        with sampling(limit) as sample:
            try:
                ds = task.read(path, spec.data, labels)
            except LmkError as e:
                errors.append(e)
                continue
        whole = not sample.cut
        if key == "data.train":
            if not ds.examples:
                errors.append(LmkError(f"no usable training rows in {path}", where=key,
                                       fix="check the file and the data.* column settings (lmkernel fields data)"))
                return
            if whole:
                try:
                    labels = task.infer_labels(ds.examples)
                except LmkError as e:
                    errors.append(e)
        shown = f"{len(ds.examples)} usable row(s)" + ("" if whole else f" in the first {limit} read")
        skipped = f", {len(ds.bad)} bad row(s) skipped" if ds.bad else ""
        kinds = f", {len(labels)} label(s)" if key == "data.train" and labels else ""
        notes.append(f"{key}: {path}: {shown}{skipped}{kinds}")


def _check_corpus(spec: Any, limit: int, notes: list[str], errors: list[LmkError]) -> None:
    from ..pretrain.corpus import CorpusStats, boundary_used, iter_texts, resolve_files

    d = spec.data
    for key, path in _files(spec):
        stats = CorpusStats()
        try:
            files = resolve_files(path, key)
            docs = sum(1 for _ in islice(iter_texts(files, d.text_column, d.on_bad_rows, stats,
                                                    d.document_boundary), limit))
        except LmkError as e:
            errors.append(e)
            continue
        if docs == 0:
            errors.append(LmkError(f"no text in {path}", where=key, fix="give files that hold text"))
            continue
        more = "" if docs < limit else f" (the first {limit} read)"
        notes.append(f"{key}: {path}: {len(files)} file(s), {docs} document(s){more}, "
                     f"document boundary {boundary_used(d.document_boundary, stats)}")
