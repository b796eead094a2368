"""End-to-end on a tiny BERT: `lmkernel run` an embedding spec, predict, eval; the artifact's
sentence-transformers layout; Model.embed and the knowledge embedder on the run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.clikit import cli

PAIRS = [("the film was great", "the book was lovely"), ("the hotel was awful", "the room was bad"),
         ("the film was bad", "the book was awful"), ("the room was great", "the hotel was lovely"),
         ("房间 太差", "服务 糟糕"), ("电影 很好", "服务 满意")]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tiny_bert) -> Path:
    root = tmp_path_factory.mktemp("embedding-e2e")
    for split, n in (("train", 36), ("dev", 6)):
        rows = [{"anchor": PAIRS[i % 6][0], "positive": PAIRS[i % 6][1]} for i in range(n)]
        (root / f"{split}.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                                             encoding="utf-8")
    spec = root / "spec.yaml"
    spec.write_text(f"""task: {{type: embedding}}
data: {{train: train.jsonl, validation: dev.jsonl, max_length: 32}}
model: {{name: {tiny_bert}}}
train: {{epochs: 2, batch_size: 6, lr: 1e-3, precision: fp32}}
output: {{dir: {root / 'runs' / 'emb'}}}
""", encoding="utf-8")
    out = cli("run", str(spec), "-q")
    assert "spearman=" in out.output and "mrr@10=" in out.output
    return root / "runs" / "emb"


def test_run_metrics_and_sentence_transformers_layout(run_dir):
    metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    val = metrics["validation"]
    assert {"spearman", "recall@1", "recall@5", "mrr@10", "ndcg@10", "loss"} <= set(val)
    assert val["recall@5"] == 1.0  # 6 distinct positives: every one is in the top 5 or 6
    model = run_dir / "model"
    modules = json.loads((model / "modules.json").read_text(encoding="utf-8"))
    assert [(m["path"], m["type"].rsplit(".", 1)[1]) for m in modules] == [
        ("", "Transformer"), ("1_Pooling", "Pooling"), ("2_Normalize", "Normalize")]
    pooling = json.loads((model / "1_Pooling" / "config.json").read_text(encoding="utf-8"))
    assert pooling["word_embedding_dimension"] == 32 and pooling["pooling_mode_mean_tokens"]
    assert not any(v for k, v in pooling.items() if k.startswith("pooling_mode") and k != "pooling_mode_mean_tokens")
    assert json.loads((model / "sentence_bert_config.json").read_text(encoding="utf-8"))["max_seq_length"] == 32
    assert (model / "2_Normalize").is_dir()
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in model.iterdir()}


def test_predict_and_eval_cli(run_dir, tmp_path):
    out = cli("predict", str(run_dir), "the film was great", "房间 太差", "--json")
    rows = [json.loads(line) for line in out.output.strip().splitlines()]
    assert [r["text"] for r in rows] == ["the film was great", "房间 太差"]
    assert all(r["dim"] == 32 and len(r["embedding"]) == 32 for r in rows)
    assert np.linalg.norm(rows[0]["embedding"]) == pytest.approx(1.0, abs=1e-4)
    out = cli("eval", str(run_dir), "--data", str(run_dir.parent.parent / "dev.jsonl"), "--out", str(tmp_path / "ev"),
              "-q")
    assert "spearman" in out.output
    again = json.loads((tmp_path / "ev" / "metrics.json").read_text(encoding="utf-8"))
    first = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))["validation"]
    assert again["eval"]["mrr@10"] == pytest.approx(first["mrr@10"])


def test_python_embed_and_knowledge_embedder(run_dir):
    import lmkernel
    from lmkernel.knowledge.embedder import load_embedder

    texts = ["the film was great", "the room was bad", "电影 很好"]
    vectors = lmkernel.load(run_dir).embed(texts, batch_size=2)
    assert vectors.dtype == np.float32 and vectors.shape == (3, 32)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    embedder = load_embedder(run_dir)
    assert embedder.dim == 32
    assert np.allclose(embedder.embed(texts), vectors, atol=1e-5)
    assert embedder.matches(embedder.identity)


def test_passages_may_be_embedded_longer_than_the_training_length(run_dir, tmp_path):
    """A run trained on 32-token pairs cuts at 32 by default; an index asked for 64 records it and keeps it."""
    from lmkernel.knowledge.embedder import load_embedder
    from lmkernel.knowledge.index import build_index, open_index

    long = " ".join(["the hotel room was bad"] * 10) + " but the film was great"  # over 32 tokens
    short, wide = load_embedder(run_dir), load_embedder(run_dir, max_length=64)
    assert (short.max_length, wide.max_length) == (32, 64) and short.identity["max_length"] == 32
    assert np.allclose(short.embed("the film"), wide.embed("the film"), atol=1e-5)
    assert not np.allclose(short.embed(long), wide.embed(long), atol=1e-3)
    (tmp_path / "doc.txt").write_text(long + "\n", encoding="utf-8")
    build_index([tmp_path / "doc.txt"], tmp_path / "idx", wide, progress=False)
    reopened = open_index(tmp_path / "idx")
    assert reopened.manifest["embedder"]["max_length"] == 64 and reopened.embedder.max_length == 64


def test_sentence_transformers_loads_the_artifact(run_dir):
    st = pytest.importorskip("sentence_transformers")
    import lmkernel

    texts = ["the film was great", "the room was bad", "房间 太差"]
    theirs = st.SentenceTransformer(str(run_dir / "model"), device="cpu").encode(texts, convert_to_numpy=True)
    ours = lmkernel.load(run_dir).embed(texts)
    assert np.allclose(theirs, ours, atol=1e-5)


def test_classifier_run_is_refused_by_embed(tmp_path):
    from lmkernel.errors import LmkError
    from lmkernel.tasks import get_task

    assert hasattr(get_task("embedding"), "embed") and not hasattr(get_task("classification"), "embed")
    with pytest.raises(LmkError):
        from lmkernel.artifact import Model

        Model(None, None, get_task("classification"), {"task": "classification", "labels": []}, tmp_path).embed("x")
