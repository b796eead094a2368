"""The extractive-QA predictor: {question, context} in, the answer span out, through the dynamic batcher.

The request path encodes the pair into windows (a long context runs as several, like ``predict``) and
counts their tokens, so a context past the cap is a 413 before it queues; the batcher's thread runs
the windows of many requests together and picks each question's best span with the task's own code
(``QaTask.answer_windows``), so the server answers exactly what ``lmkernel.load(run).predict`` does.
Each side keeps its own tokenizer copy (a fast tokenizer's truncation state is shared Rust state,
huggingface/tokenizers#537).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
from collections.abc import Sequence
from typing import Any, ClassVar

from .http_errors import ApiError
from .predictor import model_name

DEFAULT_MAX_TOKENS = 4096  # context tokens per question: long contexts run as overlapping windows


@dataclasses.dataclass
class Encoded:
    """One question's windows; its length (what the batcher groups by and admission counts) is their tokens."""

    question: str
    context: str
    windows: list[Any]

    def __len__(self) -> int:
        return sum(len(w.input_ids) for w in self.windows)


class QaPredictor:
    """Answers for a loaded ``qa`` artifact.

    Args:
        model: ``lmkernel.load`` of a qa run (``.model``, ``.tokenizer``, ``.task``, ``.card``, ``.path``).
        max_input_tokens: context tokens per question at most; None: 4096.
        precision, threads, prepack: as for classification; bf16 is refused for compressed weights.
    """

    task: ClassVar[str] = "qa"

    def __init__(self, model: Any, *, max_input_tokens: int | None = None, precision: str = "fp32",
                 threads: int | None = None, prepack: bool = True):
        from .predictor import prepack_model, resolve_precision

        self.model = model
        self.tokenizer = copy.deepcopy(model.tokenizer)  # the request path's
        self._worker_tokenizer = copy.deepcopy(model.tokenizer)  # the batcher's (pad id only)
        self.card = model.card
        self.labels: list[str] = []
        self.name = model_name(model.path)
        self.max_length = int(self.card.get("max_length", 384))
        self.max_input_tokens = max_input_tokens or DEFAULT_MAX_TOKENS
        self.precision = resolve_precision(precision, self.card.get("weights", "full"))
        self.threads = threads
        self.packed = prepack_model(getattr(model, "model", None), self.precision) if prepack else 0

    def info(self) -> dict[str, Any]:
        return {"id": self.name, "task": self.task, "labels": None, "base_model": self.card.get("base_model"),
                "max_input_tokens": self.max_input_tokens}

    def encode(self, items: Sequence[Any], truncate: bool) -> list[Encoded]:
        """Windows per (question, context); a bare string (admission's calibration) is a context asked about itself.

        Raises:
            ApiError: 413 for a context over ``max_input_tokens`` unless ``truncate`` (then it is cut).
        """
        pairs = [(t[:200], t) if isinstance(t, str) else t for t in items]
        contexts = [self._capped(c, truncate, i) for i, (_, c) in enumerate(pairs)]
        questions = [q for q, _ in pairs]
        windows = self.model.task.plan_windows(self.tokenizer, questions, contexts, None, self.max_length)
        out = [Encoded(q, c, []) for q, c in zip(questions, contexts)]
        for w in windows:
            out[w.item].windows.append(w)
        return out

    def _capped(self, context: str, truncate: bool, index: int) -> str:
        enc = self.tokenizer(context, add_special_tokens=False, return_offsets_mapping=True, truncation=False,
                             verbose=False)
        n = len(enc["input_ids"])
        if n <= self.max_input_tokens:
            return context
        if not truncate:
            where = "context" if index == 0 else f"items[{index}].context"
            raise ApiError(413, f"the context has {n} tokens, more than the limit of {self.max_input_tokens}; "
                           "shorten it or send \"truncate\": true", param=where)
        return context[: enc["offset_mapping"][self.max_input_tokens - 1][1]]

    def setup_thread(self) -> None:
        import torch

        if self.threads:
            torch.set_num_threads(self.threads)

    def __call__(self, items: list[Encoded]) -> list[dict[str, Any]]:
        import torch

        windows = [dataclasses.replace(w, item=i) for i, e in enumerate(items) for w in e.windows]
        autocast = (torch.autocast("cpu", dtype=torch.bfloat16) if self.precision == "bf16"
                    else contextlib.nullcontext())
        with torch.inference_mode(), autocast:
            return self.model.task.answer_windows(self.model.model, self._worker_tokenizer,
                                                  [(e.question, e.context) for e in items], windows,
                                                  batch_size=max(len(windows), 1))

    def warm_up(self) -> None:
        self(self.encode([("who warmed up?", "the server warmed up before it was ready")], truncate=True))
