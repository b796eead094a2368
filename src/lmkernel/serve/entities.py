"""The NER predictor: texts in, typed entity spans out, through the dynamic batcher like classify.

The task's own ``predict`` (``lmkernel.load(run).predict``) does the word splitting, windows over
long texts and span building; this wrapper only adds what a server needs around it: a per-text
token cap checked on the request path (413, or cut at a token boundary when asked), inference
mode in the batcher's thread, and the /v1/models entry.

A fast tokenizer keeps its truncation setting in shared Rust state and changes it when a call asks
for another, so two threads tokenizing with different settings can silently get each other's
(huggingface/tokenizers#537). The task's ``predict`` tokenizes with and without truncation, and
the request path runs beside it on the event loop (and beside other workers with ``serve
--workers``): each of them gets its own copy of the tokenizer.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Sequence
from typing import Any, ClassVar

from .http_errors import ApiError
from .predictor import model_name

DEFAULT_MAX_TOKENS = 2048  # per text: long texts run as overlapping windows, so the cap is about cost


class NerPredictor:
    """Entities per text for a loaded ``ner`` artifact (or any object with the same ``predict``).

    Args:
        model: ``.predict(texts, batch_size=, tokenizer=)``, ``.tokenizer``, ``.card``, ``.path``, ``.labels``.
        max_input_tokens: tokens per text at most; None: 2048 (windows cover texts over the model's length).
        precision, threads, prepack: as for classification; bf16 is refused for compressed weights.
    """

    task: ClassVar[str] = "ner"

    def __init__(self, model: Any, *, max_input_tokens: int | None = None, precision: str = "fp32",
                 threads: int | None = None, prepack: bool = True):
        from .predictor import prepack_model, resolve_precision

        self.model = model
        self.tokenizer = copy.deepcopy(model.tokenizer)  # the request path's: counts, never truncates
        self._truncating = copy.deepcopy(model.tokenizer)  # the request path's: cuts at the cap
        self._worker = threading.local()  # each batcher thread's own tokenizer for predict
        self.card = model.card
        self.labels = list(model.labels)
        self.name = model_name(model.path)
        self.max_input_tokens = max_input_tokens or DEFAULT_MAX_TOKENS
        self.precision = resolve_precision(precision, self.card.get("weights", "full"))
        self.threads = threads
        self.packed = prepack_model(getattr(model, "model", None), self.precision) if prepack else 0

    def info(self) -> dict[str, Any]:
        return {"id": self.name, "task": self.task, "labels": self.labels, "base_model": self.card.get("base_model"),
                "max_input_tokens": self.max_input_tokens}

    def encode(self, texts: Sequence[str], truncate: bool) -> list[str]:
        """The texts to run (cut at a token boundary when ``truncate``).

        Raises:
            ApiError: 413 for the first text over ``max_input_tokens`` unless ``truncate``.
        """
        out = []
        counts = self.tokenizer(list(texts), add_special_tokens=False, truncation=False, verbose=False)["input_ids"]
        for i, (text, ids) in enumerate(zip(texts, counts)):
            if len(ids) <= self.max_input_tokens:
                out.append(text)
            elif truncate:
                out.append(self._cut(text))
            else:
                raise ApiError(413, f"texts[{i}] has {len(ids)} tokens, more than the limit of "
                               f"{self.max_input_tokens}; shorten it or send \"truncate\": true",
                               param=f"texts[{i}]")
        return out

    def _cut(self, text: str) -> str:
        enc = self._truncating(text, add_special_tokens=False, return_offsets_mapping=True, truncation=True,
                               max_length=self.max_input_tokens)
        return text[: enc["offset_mapping"][-1][1]] if enc["offset_mapping"] else ""

    def tokens(self, texts: Sequence[str]) -> int:
        return sum(map(len, self.tokenizer(list(texts), add_special_tokens=False, verbose=False)["input_ids"]))

    def setup_thread(self) -> None:
        import torch

        if self.threads:
            torch.set_num_threads(self.threads)

    def __call__(self, texts: list[str]) -> list[dict[str, Any]]:
        import contextlib

        import torch

        autocast = (torch.autocast("cpu", dtype=torch.bfloat16) if self.precision == "bf16"
                    else contextlib.nullcontext())
        tokenizer = getattr(self._worker, "tokenizer", None)
        if tokenizer is None:
            tokenizer = self._worker.tokenizer = copy.deepcopy(self.model.tokenizer)
        with torch.inference_mode(), autocast:
            results = self.model.predict(list(texts), batch_size=len(texts), tokenizer=tokenizer)
        return [{"entities": r["entities"]} for r in results]

    def warm_up(self) -> None:
        self(["Warm up in Berlin", "warm up"])
