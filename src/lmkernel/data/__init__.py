"""Data stage: readers for labelled files, deterministic splits and length-grouped batching."""

from .batching import eval_batches, train_batches
from .readers import BadRow, ReadResult, Row, read_rows
from .splits import split_off

__all__ = ["BadRow", "ReadResult", "Row", "eval_batches", "read_rows", "split_off", "train_batches"]
