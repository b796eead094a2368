"""The predictor seam: what a router needs from a model, and the classification implementation.

A predictor splits ``Model.predict`` into the two halves a server needs apart: ``encode`` runs on
the request path (so a too-long text is a 413 before it waits in the queue) and ``__call__``
runs one length-sorted group of encoded texts in the batcher's worker thread. Tests inject a
fake with the same methods; a generation predictor will add its own.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar, Protocol

from ..models.decoder_heads import batch_pad_id
from ..models.packed import pack_linears
from ..models.unpadded import classify_unpadded, supports_unpadded
from .http_errors import ApiError


class Predictor(Protocol):
    task: ClassVar[str]
    name: str
    max_input_tokens: int

    def info(self) -> dict[str, Any]: ...  # the /v1/models entry

    def encode(self, texts: Sequence[str], truncate: bool) -> list[list[int]]: ...

    def __call__(self, items: list[list[int]]) -> list[dict[str, Any]]: ...

    def setup_thread(self) -> None: ...  # once, in the inference thread

    def warm_up(self) -> None: ...


def model_name(path: Path) -> str:
    """``runs/sst2/model`` -> ``sst2``: the run's name identifies the model to clients."""
    path = Path(path).resolve()
    return path.parent.name if path.name == "model" else path.name


class ClassifierPredictor:
    """Label probabilities for token ids, with the artifact's tokenizer and label names.

    Args:
        model: a loaded classification artifact (``lmkernel.load``).
        max_input_tokens: per-text limit; None: the training ``max_length``. Never more than the
            model's position embeddings, which would otherwise fail inside the forward pass.
        precision: "fp32"; "bf16" runs under autocast; "auto" picks bf16 where it pays (lmkernel/device.py).
        threads: torch intra-op threads for the inference thread; None keeps torch's default.
        prepack: fp32 on CPU: pack the linear layers' weights for oneDNN once (``models/packed.py``),
            in place in ``model``.
    """

    task: ClassVar[str] = "classification"

    def __init__(self, model: Any, *, max_input_tokens: int | None = None, precision: str = "fp32",
                 threads: int | None = None, prepack: bool = True):
        self.model = model.model
        # One tokenizer per truncation setting: a fast tokenizer mutates its Rust state when the
        # setting changes between calls, which can fail with "Already borrowed" while another thread
        # encodes (huggingface/tokenizers#537); with fixed settings, concurrent encodes only read.
        self.tokenizer = model.tokenizer
        self._truncating = copy.deepcopy(model.tokenizer)
        self.card = model.card
        self.labels = list(model.labels)
        self.name = model_name(model.path)
        self.model_dir = model.path  # the monitor reads the artifact's trust.json reference from it
        ceiling = getattr(self.model.config, "max_position_embeddings", None) or 512
        self.max_input_tokens = min(max_input_tokens or self.card.get("max_length", 512), ceiling)
        self.pad_id = batch_pad_id(self.model, self.tokenizer)  # a decoder pools at the last non-pad token
        self.precision = resolve_precision(precision, self.card["weights"])
        self.threads = threads
        self.device = next(self.model.parameters()).device
        # one GEMM per layer over the batch's real tokens (models/unpadded.py); the batcher then
        # sends the whole batch as one group instead of cutting it into padded length groups
        self.unpadded = supports_unpadded(self.model)
        self.packed = prepack_model(self.model, self.precision) if prepack else 0
        # the trust profile's flags; the pooled features come from the logits' own forward (a head hook)
        self.trust = getattr(model, "trust", None)
        self._capture = None
        if self.trust is not None and self.trust.needs_features:
            from ..trust.features import attach

            attached = attach(self.model)
            self._capture = attached[0] if attached else None
        # the request path's fast lane: the Rust tokenizer without the transformers wrapper
        self._ids = core_encoder(self.tokenizer, None)
        self._cut_ids = core_encoder(self._truncating, self.max_input_tokens)
        self.tokenizer(["fix the settings"], truncation=False, verbose=False)  # each tokenizer's state is
        self._truncating(["fix the settings"], truncation=True, max_length=self.max_input_tokens)  # set once, here

    def info(self) -> dict[str, Any]:
        return {"id": self.name, "task": self.task, "labels": self.labels,
                "base_model": self.card.get("base_model"), "max_input_tokens": self.max_input_tokens}

    def encode(self, texts: Sequence[str], truncate: bool) -> list[list[int]]:
        """Token ids per text.

        Raises:
            ApiError: 413 for the first text over ``max_input_tokens`` unless ``truncate``.
        """
        if truncate:
            if self._cut_ids is not None:
                return self._cut_ids(texts)
            return self._truncating(list(texts), truncation=True, max_length=self.max_input_tokens)["input_ids"]
        ids = (self._ids(texts) if self._ids is not None
               else self.tokenizer(list(texts), truncation=False, verbose=False)["input_ids"])
        for i, seq in enumerate(ids):
            if len(seq) > self.max_input_tokens:
                raise ApiError(413, f"texts[{i}] has {len(seq)} tokens, more than the limit of "
                               f"{self.max_input_tokens}; shorten it or send \"truncate\": true",
                               param=f"texts[{i}]")
        return ids

    def setup_thread(self) -> None:
        import torch

        if self.threads:
            torch.set_num_threads(self.threads)

    def __call__(self, items: list[list[int]]) -> list[dict[str, Any]]:
        import torch

        from ..tasks.classification import ClassificationTask

        autocast = (torch.autocast(self.device.type, dtype=torch.bfloat16) if self.precision == "bf16"
                    else contextlib.nullcontext())
        with torch.inference_mode(), autocast:
            if self.unpadded:
                logits = classify_unpadded(self.model, items)
            else:
                batch = ClassificationTask().collate([{"input_ids": ids} for ids in items], self.pad_id)
                logits = self.model(**{k: v.to(self.device) for k, v in batch.items()}).logits  # (B, labels)
        probs = torch.softmax(logits.float(), -1).cpu()
        flags = (self.trust.flags(probs.numpy(), self._capture.take().cpu().numpy() if self._capture else None,
                                  items, self.tokenizer.unk_token_id)
                 if self.trust is not None else None)
        out = []
        for row, p in enumerate(probs.tolist()):
            best = max(range(len(p)), key=p.__getitem__)
            out.append({"label": self.labels[best], "score": p[best],
                        "probabilities": dict(zip(self.labels, p)), **(flags[row] if flags else {})})
        return out

    def warm_up(self) -> None:
        """One short and one full-length batch: first-call allocations happen before readiness."""
        short = self.encode(["warm up"], truncate=True)[0]
        self([short, short])
        self([short[:1] + [short[1]] * (self.max_input_tokens - 2) + short[-1:]])


PROBES = ["fix the settings", "", "Hello, WORLD!  naïve café", "房间太差了，服务也不好", "a " * 700]


def core_encoder(tokenizer: Any, max_length: int | None) -> Callable[[Sequence[str]], list[list[int]]] | None:
    """Token ids per text from a copy of a fast tokenizer's Rust core, or None (a slow tokenizer, or
    a core whose ids differ from the tokenizer's own on the probe texts).

    The transformers wrapper cost as much as the tokenization itself on a one-sentence request, on
    the event loop that shares the model's cores (a third of the request path's remaining time in a
    cProfile of /v1/classify). The copy is set once, as the wrapper sets it for ``truncation=True,
    max_length=max_length`` (None: ``truncation=False``), and never changed, so threads share it
    read-only.
    """
    core = getattr(tokenizer, "_tokenizer", None)
    if core is None:
        return None
    from tokenizers import Tokenizer

    core = Tokenizer.from_str(core.to_str())
    core.no_padding()
    if max_length is None:
        core.no_truncation()
    else:
        core.enable_truncation(max_length)

    def encode(texts: Sequence[str]) -> list[list[int]]:
        return [e.ids for e in core.encode_batch(list(texts))]

    cut = {} if max_length is None else {"truncation": True, "max_length": max_length}
    want = copy.deepcopy(tokenizer)(PROBES, verbose=False, **cut)["input_ids"]
    return encode if encode(PROBES) == want else None


def prepack_model(model: Any, precision: str) -> int:
    """Pack a served PyTorch model's linear layers for oneDNN, in bf16 when serving bf16 (a packed layer
    is not autocast: it computes in the dtype it was packed in); the count of layers packed."""
    import torch

    if precision not in ("fp32", "bf16") or not isinstance(model, torch.nn.Module):
        return 0
    return pack_linears(model, torch.bfloat16 if precision == "bf16" else torch.float32)


def resolve_precision(requested: str, weights: str) -> str:
    """fp32 | bf16 for ``--precision``; auto picks bf16 only for float weights on fast-bf16 hardware.

    Raises:
        LmkError: bf16 asked for a compressed (int8, ONNX) artifact, whose kernels take no autocast.
    """
    from ..errors import LmkError

    float_weights = weights in ("full", "merged", "adapter")
    if requested == "auto":
        from ..device import choose_precision

        return "bf16" if float_weights and choose_precision("auto") == "bf16" else "fp32"
    if requested == "bf16" and not float_weights:
        raise LmkError(f"--precision bf16 needs float weights; this artifact's weights are {weights!r}",
                       where="--precision", fix="serve it with --precision fp32 (it is already compressed), "
                       "or serve the uncompressed run with bf16")
    return requested
