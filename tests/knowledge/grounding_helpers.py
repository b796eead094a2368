"""A small in-memory index with the knowledge index's search API (INDEX_API.md), for the grounding tests."""

from __future__ import annotations

import numpy as np

from lmkernel.knowledge.index import Hit

FAQ = [
    ("faq-1", "To reset your password, open Settings, choose Account and press Reset password."),
    ("faq-2", "Refunds are paid back to the original card within five working days."),
    ("faq-3", "Our support line is open from 9:00 to 18:00, Monday to Friday."),
    ("faq-4", "退货需要在收到商品后七天内申请，并保持商品完好。"),
]


class FakeIndex:
    """Ranks chunks by the embedder's cosine (``dense``: a fixed cosine instead, to test the threshold)."""

    def __init__(self, embedder, docs=FAQ, dense: float | None = None):
        self.embedder = embedder
        self.dense = dense
        self.docs = list(docs)
        self.searches: list[str] = []
        self.refreshed = 0

    def add(self, doc_id: str, text: str) -> None:
        self.docs.append((doc_id, text))

    def refresh(self) -> None:
        self.refreshed += 1

    def info(self) -> dict:
        return {"identity": self.embedder.identity, "chunks": len(self.docs)}

    def search(self, query: str, k: int = 5, filters: dict | None = None, mode: str = "hybrid") -> list[Hit]:
        self.searches.append(query)
        vectors = self.embedder.embed([query] + [t for _, t in self.docs])
        cos = vectors[1:] @ vectors[0]
        order = np.argsort(-cos, kind="stable")[:k]
        return [Hit(text=self.docs[i][1], score=float(cos[i]), source=self.docs[i][0],
                        chunk_id=f"{self.docs[i][0]}#0", doc_id=self.docs[i][0], meta={"lang": "en"},
                        dense=self.dense if self.dense is not None else float(cos[i]))
                for i in order]


def make_chat_run(tiny_llama, root):
    """A chat run on the tiny Llama with room for a few passages (1,024 positions; RoPE takes any length)."""
    import json
    import shutil

    run = root / "tiny-chat"
    shutil.copytree(tiny_llama, run / "model")
    config = json.loads((run / "model" / "config.json").read_text(encoding="utf-8"))
    config["max_position_embeddings"] = 1024
    (run / "model" / "config.json").write_text(json.dumps(config), encoding="utf-8")
    card = {"task": "chat", "labels": [], "weights": "full", "format": 1, "task_options": {},
            "base_model": str(tiny_llama)}
    (run / "model" / "lmkernel.json").write_text(json.dumps(card), encoding="utf-8")
    return run


def write_faq(path):
    """The FAQ as a .jsonl file of documents (id, text, lang)."""
    import json

    rows = [{"id": i, "text": t, "lang": "zh" if i == "faq-4" else "en"} for i, t in FAQ]
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


class NoModel:
    """A stand-in classification predictor: these tests only use the knowledge routes."""

    task = "classification"
    name = "none"
    max_input_tokens = 8

    def info(self):
        return {"id": self.name, "task": self.task, "labels": ["a"], "max_input_tokens": 8}

    def encode(self, texts, truncate):
        return [[1] for _ in texts]

    def __call__(self, items):
        return [{"label": "a", "score": 1.0, "probabilities": {"a": 1.0}} for _ in items]

    def setup_thread(self):
        pass

    def warm_up(self):
        pass


def make_qa_run(tiny_bert, root):
    """A qa run on the tiny BERT with a random span head (no training): answers are arbitrary spans."""
    import torch

    from lmkernel.artifact import save_artifact
    from lmkernel.models.resolve import load_tokenizer
    from lmkernel.tasks import get_task

    torch.manual_seed(0)
    model = get_task("qa").build_model(tiny_bert, [])
    run = root / "tiny-qa"
    card = {"task": "qa", "labels": [], "base_model": str(tiny_bert), "max_length": 64,
            "task_options": {"no_answer": "never"}}
    save_artifact(run / "model", model, load_tokenizer(tiny_bert), card)
    return run
