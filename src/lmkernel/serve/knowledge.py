"""What a server holds for ``--knowledge IDX`` and ``--embedder``: an index and an embedding model.

The holder is built before the app (cheap: references and options) and loaded in the lifespan's
background thread with the served model, so /readyz turns 200 only once both are in. Embedding and
search run in a thread, one at a time (one torch model, no oversubscribed cores), never on the event loop.
Before each search the index is refreshed (``Index.refresh()``: it picks up ``lmkernel index add`` /
``delete`` atomically), so a long-running server answers from the current documents.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from ..errors import LmkError
from ..knowledge.answer import DEFAULT_K, DEFAULT_MIN_SCORE

SERVED = object()  # the QA model of grounded chats is the served run itself


class Knowledge:
    """An index and/or an embedder for a server.

    Args:
        index: an index folder (opened at ``load``) or an opened index (tests).
        embedder: a run, alias or encoder folder (loaded at ``load``), or an ``Embedder``; with an index,
            it must make the same vectors as the index's model. None: the index's own model.
        k, min_score, min_bm25: grounded chat defaults (a request may change them; knowledge.answer.prepare).
        qa: an extractive QA run (or a loaded one) that answers grounded chats with the best span over the
            passages (``lmkernel serve QA_RUN --knowledge IDX``) instead of a generating model.
    """

    def __init__(self, index: str | Path | Any = None, embedder: str | Path | Any = None, *,
                 k: int = DEFAULT_K, min_score: float = DEFAULT_MIN_SCORE, min_bm25: float | None = None,
                 qa: str | Path | Any = None):
        if index is None and embedder is None:
            raise ValueError("Knowledge needs an index or an embedder")
        if qa is not None and index is None:
            raise ValueError("an extractive QA model answers from an index: give one")
        self._index_ref, self._embedder_ref, self._qa_ref = index, embedder, qa
        self.qa: Any = None if isinstance(qa, (str, Path)) else qa
        self.index: Any = None if isinstance(index, (str, Path)) else index
        self.embedder: Any = None if isinstance(embedder, (str, Path)) else embedder
        self.k, self.min_score, self.min_bm25 = k, min_score, min_bm25
        self._lock = threading.Lock()
        self._tokenizer: Any = None

    @property
    def has_index(self) -> bool:
        return self._index_ref is not None

    @property
    def name(self) -> str:
        """The embedding model's name for clients: the ref's last path part (``runs/emb`` -> ``emb``)."""
        ref = str(getattr(self.embedder, "ref", self._embedder_ref or "embedder"))
        return Path(ref.rstrip("/")).name or ref

    def check(self, generation: bool, qa: bool = False) -> None:
        """Before the server starts: open the index (a missing or damaged one is a CLI error, not a server
        that never gets ready). ``qa``: the served QA run answers grounded chats (``attach``). Without a
        generating or QA model only /v1/search and /v1/embeddings use the index."""
        if self.index is None and self._index_ref is not None:
            from ..knowledge.index import open_index

            self.index = open_index(self._index_ref)
        if qa and self.has_index:
            self._qa_ref = SERVED
        elif self.has_index and not generation:
            import logging

            logging.getLogger("lmkernel.serve").info(
                "--knowledge: the served model does not generate, so chat completions are not served; "
                "/v1/search and /v1/embeddings are")

    def load(self) -> None:
        """Open the index and load the embedder (the lifespan's thread).

        Raises:
            LmkError: the index is missing or damaged, or ``--embedder`` makes other vectors than the index's model.
        """
        if self.index is None and self._index_ref is not None:
            from ..knowledge.index import open_index

            self.index = open_index(self._index_ref)
        if self.embedder is None and self._embedder_ref is not None:
            from ..knowledge.embedder import load_embedder

            self.embedder = load_embedder(self._embedder_ref)
        if self.index is not None and self.embedder is not None:
            identity = index_identity(self.index)
            if identity is not None and not self.embedder.matches(identity):
                raise LmkError(f"--embedder {self.embedder.ref} makes other vectors than the model the index "
                               f"was built with ({identity.get('model')})", where="--embedder",
                               fix="leave --embedder out (the index's own model serves /v1/embeddings) or "
                               "rebuild the index with this model")
        if self.embedder is None and self.index is not None:
            self.embedder = self.index.embedder
        self.embedder.embed(["warm up"])
        if self.qa is None and self._qa_ref is not None and self._qa_ref is not SERVED:
            from ..knowledge.answer import load_qa

            self.qa = load_qa(self._qa_ref)

    def attach(self, predictor: Any) -> None:
        """Once the served model is loaded: a served QA run answers grounded chats with its own weights."""
        if self._qa_ref is SERVED:
            self.qa = predictor.model

    @property
    def answers_by_qa(self) -> bool:
        return self._qa_ref is not None

    def embed(self, texts: Sequence[str]) -> Any:
        """Unit vectors; a few short texts on one torch thread, as the index embeds queries (index._one_thread)."""
        from ..knowledge.index import FEW_QUERIES, _one_thread

        with self._lock, _one_thread(len(texts) <= FEW_QUERIES):
            return self.embedder.embed(list(texts))

    def count_tokens(self, texts: Sequence[str]) -> int:
        """Tokens the embedder reads for ``texts`` (each cut at its max_length), for ``usage``."""
        tok = self._tokenizer_once()
        cap = int(getattr(self.embedder, "max_length", 512))
        if tok is None:
            return sum(min(len(t.split()), cap) for t in texts)
        return sum(min(len(ids), cap) for ids in tok(list(texts), add_special_tokens=True)["input_ids"])

    def _tokenizer_once(self) -> Any:
        if self._tokenizer is None:
            self._tokenizer = embedder_tokenizer(self.embedder) or False
        return self._tokenizer or None

    def search(self, query: str, k: int, filters: dict | None, mode: str) -> list[Any]:
        with self._lock:
            self.refresh()
            return list(self.index.search(query, k=k, filters=filters, mode=mode))

    def prepare(self, question: str, **kwargs: Any) -> Any:
        """``knowledge.answer.prepare`` on the current index (see there)."""
        from ..knowledge.answer import prepare

        with self._lock:
            self.refresh()
            return prepare(self.index, question, **kwargs)

    def extract(self, question: str, **kwargs: Any) -> Any:
        """The extractive answer (``knowledge.answer.extract``) over the current index's passages."""
        from ..knowledge.answer import extract

        grounding = self.prepare(question, **kwargs)
        with self._lock:
            return extract(grounding, self.qa)

    def refresh(self) -> None:
        refresh = getattr(self.index, "refresh", None)
        if refresh is not None:
            refresh()


def index_identity(index: Any) -> dict | None:
    """The embedder identity the index recorded when it was built (``Embedder.identity``)."""
    manifest = getattr(index, "manifest", None)
    ident = manifest.get("embedder") if isinstance(manifest, dict) else None
    if ident is None and hasattr(index, "info"):
        ident = index.info().get("identity")
    return ident if isinstance(ident, dict) else None


def embedder_tokenizer(embedder: Any) -> Any:
    """The tokenizer behind an embedder (None when it cannot be found: usage then counts words)."""
    tok = getattr(embedder, "tokenizer", None)
    if tok is not None:
        return tok
    ref = getattr(embedder, "ref", None)
    if not ref:
        return None
    try:
        from ..models.resolve import ALIASES, load_tokenizer, resolve_model_path

        path = Path(ref)
        if ref not in ALIASES and path.exists():
            from ..artifact import CARD, find_model_dir

            if (path / CARD).is_file() or (path / "model" / CARD).is_file():
                return load_tokenizer(find_model_dir(path))
            return load_tokenizer(path)
        return load_tokenizer(resolve_model_path(ref))
    except Exception:  # counting is best effort: a tokenizer we cannot find falls back to words
        return None


class EmbeddingPredictor:
    """Serves a run of the ``embedding`` task: texts in, unit vectors out, through the dynamic batcher.

    Items are the texts themselves (the embedder tokenizes), so ``encode`` only checks them.
    """

    task: ClassVar[str] = "embedding"

    def __init__(self, model: Any, *, max_input_tokens: int | None = None, threads: int | None = None,
                 **_: Any):
        from .predictor import model_name

        self.model = model
        self.name = model_name(model.path)
        self.max_input_tokens = int(max_input_tokens or model.card.get("max_length", 256))
        self.threads = threads
        self.tokenizer = model.tokenizer

    @property
    def dim(self) -> int:
        return int(self.model.embed(["dim"]).shape[1])

    def info(self) -> dict[str, Any]:
        return {"id": self.name, "task": self.task, "base_model": self.model.card.get("base_model"),
                "max_input_tokens": self.max_input_tokens}

    def encode(self, texts: Sequence[str], truncate: bool) -> list[str]:
        return list(texts)

    def tokens(self, texts: list[str]) -> int:
        ids = self.tokenizer(texts, add_special_tokens=True)["input_ids"]
        return sum(min(len(x), self.max_input_tokens) for x in ids)

    def embed(self, texts: Sequence[str]) -> Any:
        return self.model.embed(list(texts))

    def __call__(self, items: list[str]) -> list[Any]:
        return list(self.model.embed(items))

    def setup_thread(self) -> None:
        import torch

        if self.threads:
            torch.set_num_threads(self.threads)

    def warm_up(self) -> None:
        self(["warm up", "a somewhat longer text to warm up the model"])
