"""Text → unit vectors: the one embedding seam for the index, search, recommendation and serving.

An ``Embedder`` wraps either a plain encoder (a model alias such as ``minilm``, a local Hugging Face
folder, or the encoder a masked-LM ``lmkernel pretrain`` run made: mean pooling over the last hidden
states, then L2 normalisation, as sentence-transformers' default recipe) or an lmkernel run of the
``embedding`` task (its own pooling, via ``Model.embed``).
Whatever made the vectors, an index records the embedder's ``identity`` so that a query embedded by a
different model is refused instead of silently returning noise.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import LmkError
from ..evaluation.textmetrics import HAN  # the project's one Han range

PROBE = "lmkernel embedding probe: 检索 retrieval 123"  # embedded once to tell two models apart


def mean_pool(hidden, mask):
    """The mean of the token vectors that are not padding (``hidden``: [B, T, H], ``mask``: [B, T])."""
    mask = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)


@dataclass
class Embedder:
    """Embeds texts as float32 unit vectors (``embed``), one row per text, in the order given.

    Attributes:
        ref: what the user named (an alias, a folder, a run directory): shown in messages.
        dim: the vector size.
        encode: ``(texts, batch_size) -> np.ndarray [n, dim]``, not yet normalised.
        max_length: tokens kept per text (longer ones are cut, as every encoder must).
        source: what kind of model ``ref`` is and how its vectors are pooled (recorded in ``identity``).
    """

    ref: str
    dim: int
    encode: Callable[[list[str], int], np.ndarray]
    max_length: int = 256
    source: str = "encoder, mean pooling"

    def embed(self, texts: str | Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Unit vectors for ``texts`` (a string gives one row); an empty list gives a [0, dim] array."""
        if isinstance(texts, str):
            texts = [texts]
        texts = [t if isinstance(t, str) else str(t) for t in texts]
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = np.asarray(self.encode(texts, batch_size), dtype=np.float32)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.maximum(norms, 1e-12)

    @property
    def identity(self) -> dict[str, Any]:
        """What an index stores to recognise this model later: its dimension and a digest of the probe
        text's vector rounded to two decimals (same weights give the same digest on any batch size)."""
        probe = self.embed([PROBE])[0]
        digest = hashlib.sha256(np.round(probe, 2).astype(np.float32).tobytes()).hexdigest()[:16]
        return {"model": self.ref, "source": self.source, "dim": self.dim, "max_length": self.max_length,
                "probe": probe.round(4).tolist(), "digest": digest}

    def matches(self, identity: dict[str, Any]) -> bool:
        """Whether vectors from this embedder are comparable with those of ``identity`` (same dimension
        and a probe vector within cosine 0.99: tolerant of precision and kernel noise, not of a new model)."""
        if int(identity.get("dim", -1)) != self.dim:
            return False
        theirs = np.asarray(identity.get("probe", []), dtype=np.float32)
        if theirs.shape != (self.dim,):
            return False
        mine = self.embed([PROBE])[0]
        return float(mine @ theirs / max(np.linalg.norm(theirs), 1e-12)) > 0.99


_HAN = re.compile(f"[{HAN}]")


def token_estimate(text: str) -> float:
    """About how many tokens ``text`` makes: a Han character is a token, other text about four characters
    per token. Sorting by it (not by characters) keeps Chinese and English texts of like token length
    together, so a mixed-language batch pads little."""
    han = len(_HAN.findall(text))
    return han + (len(text) - han) / 4


def _sorted_batches(texts: list[str], batch_size: int) -> list[list[int]]:
    """Indices grouped by length so that a batch pads little (the order is restored afterwards)."""
    order = sorted(range(len(texts)), key=lambda i: token_estimate(texts[i]))
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


def encoder_embedder(ref: str, max_length: int = 256, threads: int | None = None,
                     source: str = "encoder, mean pooling") -> Embedder:
    """Mean-pooled embeddings from a plain encoder: a model alias, a local Hugging Face folder, or a
    masked-LM pretrain run (its folder or ``model/``; the MLM head is left out, as ``AutoModel`` loads)."""
    import torch
    from transformers import AutoModel

    from ..models.resolve import ALIASES, load_pretrained, load_tokenizer, resolve_model_path

    if ref in ALIASES and ALIASES[ref].decoder:
        raise LmkError(f"{ref!r} is a causal language model, not a sentence encoder", where="--model",
                       fix="embed with an encoder (the alias minilm, a local BERT-like folder) or a run of "
                       "the embedding task")
    path = resolve_model_path(ref)
    tokenizer = load_tokenizer(path)
    model = load_pretrained(AutoModel, path, dtype=torch.float32)
    model.eval()
    limit = min(max_length, int(getattr(model.config, "max_position_embeddings", max_length) or max_length))
    if threads:
        torch.set_num_threads(threads)

    def encode(texts: list[str], batch_size: int) -> np.ndarray:
        out = np.zeros((len(texts), model.config.hidden_size), dtype=np.float32)
        with torch.inference_mode():
            for idx in _sorted_batches(texts, batch_size):
                batch = tokenizer([texts[i] for i in idx], padding=True, truncation=True, max_length=limit,
                                  return_tensors="pt")
                hidden = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
                out[idx] = mean_pool(hidden, batch["attention_mask"]).float().numpy()
        return out

    return Embedder(ref=ref, dim=int(model.config.hidden_size), encode=encode, max_length=limit, source=source)


def _is_run(path: Path) -> bool:
    from ..artifact import CARD

    return (path / CARD).is_file() or (path / "model" / CARD).is_file()


def load_embedder(ref: str | Path | None = None, max_length: int | None = None) -> Embedder:
    """The embedder ``ref`` names: a run of the ``embedding`` task (or any lmkernel run whose task can
    embed), a masked-LM ``pretrain`` run (its encoder, mean-pooled), a model alias, or a local encoder
    folder. ``None`` means the default, ``minilm``. ``max_length``: tokens kept per text; ``None`` keeps
    the model's own (a run's training length, else 256): passages longer than the sentences a run was
    trained on may ask for more."""
    ref = "minilm" if ref is None else str(ref)
    path = Path(ref).expanduser()
    from ..models.resolve import ALIASES

    if ref not in ALIASES and path.exists() and _is_run(path):
        from ..artifact import find_model_dir, read_card

        card = read_card(find_model_dir(path))
        if _is_mlm_encoder(card):
            return encoder_embedder(ref, max_length=max_length or 256,
                                    source="pretrain run (masked LM), mean pooling")
        return _run_embedder(ref, path, max_length)
    return encoder_embedder(ref, max_length=max_length or 256)


def _is_mlm_encoder(card: dict[str, Any]) -> bool:
    """Whether the card is a masked-LM pretrain run's: an encoder without a task head, which embeds by
    mean pooling as any plain encoder does (a causal-LM pretrain run does not)."""
    return card.get("task") == "pretrain" and (card.get("task_options") or {}).get("objective") == "mlm"


def _run_embedder(ref: str, path: Path, max_length: int | None) -> Embedder:
    """An lmkernel run whose task has an ``embed`` hook (the embedding task); other tasks are refused."""
    from ..artifact import load

    model = load(path)
    if not hasattr(model.task, "embed"):
        raise LmkError(f"the {model.card['task']} run in {path} does not make sentence embeddings",
                       where="--model", fix="use a run of the embedding task, a masked-LM pretrain run, a model "
                       "alias such as minilm, or a local encoder folder")

    def encode(texts: list[str], batch_size: int) -> np.ndarray:
        return np.asarray(model.embed(texts, batch_size=batch_size, max_length=max_length), dtype=np.float32)

    dim = int(encode([PROBE], 1).shape[1])
    return Embedder(ref=ref, dim=dim, encode=encode, max_length=int(max_length or model.card.get("max_length", 512)),
                    source=f"{model.card['task']} run, its own pooling")
