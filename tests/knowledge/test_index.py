"""The index: build, search modes, fusion, filters, incremental add/delete, atomic swap, errors."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from lmkernel.errors import LmkError
from lmkernel.knowledge import index as index_mod
from lmkernel.knowledge import store
from lmkernel.knowledge.embedder import load_embedder
from lmkernel.knowledge.index import add_documents, build_index, delete_documents, open_index
from lmkernel.knowledge.ranking import rrf

FAQ = [
    {"id": "ship", "text": "Shipping takes three days within the country.", "lang": "en", "tag": "orders"},
    {"id": "refund", "text": "Refunds are paid back to the card within ten days.", "lang": "en", "tag": "money"},
    {"id": "hours", "text": "The shop is open from nine to five on weekdays.", "lang": "en", "tag": "shop"},
    {"id": "tuihuo", "text": "退货请在七天内联系客服。", "lang": "zh", "tag": "money"},
    {"id": "fahuo", "text": "订单一般三天内发货。", "lang": "zh", "tag": "orders"},
]


class Counting:
    """Wraps an embedder's encode to count the texts it embeds."""

    def __init__(self, ref):
        self.emb = load_embedder(str(ref))
        self.texts: list[str] = []
        inner = self.emb.encode

        def encode(texts, batch_size):
            self.texts.extend(texts)
            return inner(texts, batch_size)

        self.emb.encode = encode


def _write(path, rows):
    import json

    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture()
def idx(tmp_path, tiny_bert):
    build_index([_write(tmp_path / "faq.jsonl", FAQ)], tmp_path / "idx", str(tiny_bert), progress=False)
    return tmp_path / "idx"


def test_build_and_search_modes(idx, tiny_bert):
    ix = open_index(idx)
    assert len(ix) == 5 and ix.info()["counts"] == {"documents": 5, "chunks": 5}
    assert ix.info()["languages"] == {"en": 3, "zh": 2}
    hits = ix.search("refunds card", k=2, mode="bm25")
    assert hits[0].doc_id == "refund" and hits[0].source == "refund" and hits[0].chunk_id == "refund#0"
    assert hits[0].bm25 == hits[0].score and hits[0].dense is None and len(hits) == 1  # only matching chunks
    dense = ix.search("refunds card", k=5, mode="dense")
    assert len(dense) == 5 and all(h.score == h.dense for h in dense)
    assert [h.score for h in dense] == sorted((h.score for h in dense), reverse=True)
    emb = load_embedder(str(tiny_bert))
    want = float(emb.embed(["refunds card"])[0] @ emb.embed([FAQ[1]["text"]])[0])
    assert next(h.dense for h in dense if h.doc_id == "refund") == pytest.approx(want, abs=1e-5)
    assert ix.search("退货", k=1, mode="bm25")[0].doc_id == "tuihuo"
    assert set(ix.search("refunds card", k=2)[0].to_json()) == {"text", "score", "source", "chunk_id", "doc_id",
                                                                 "meta"}


def test_hybrid_is_reciprocal_rank_fusion_of_both_lists(idx):
    ix = open_index(idx)
    q = "shop open weekdays"
    lexical = [h.chunk_id for h in ix.search(q, k=5, mode="bm25")]
    dense = [h.chunk_id for h in ix.search(q, k=5, mode="dense")]
    want: dict[str, float] = {}
    for ranked in (lexical, dense):
        for r, cid in enumerate(ranked, start=1):
            want[cid] = want.get(cid, 0.0) + 1 / (60 + r)
    hits = ix.search(q, k=5)
    assert {h.chunk_id: h.score for h in hits} == pytest.approx(want)
    assert [h.score for h in hits] == sorted(want.values(), reverse=True)
    assert all(h.dense is not None and h.bm25 is not None for h in hits)
    assert rrf([np.array([3, 1])], [2.0], k=60) == {3: 2 / 61, 1: 2 / 62}


def test_filters_equality_any_of_and_unknown_key(idx):
    ix = open_index(idx)
    assert {h.doc_id for h in ix.search("days", k=5, filters={"lang": "zh"})} == {"tuihuo", "fahuo"}
    got = {h.doc_id for h in ix.search("days", k=5, filters={"tag": ["money", "shop"]})}
    assert got == {"refund", "tuihuo", "hours"}
    assert [h.doc_id for h in ix.search("days", k=5, filters={"doc_id": "ship"})] == ["ship"]
    assert ix.search("days", filters={"lang": "fr"}) == []
    with pytest.raises(LmkError, match="metadata field 'colour'"):
        ix.search("days", filters={"colour": "red"})


def test_add_and_delete_embed_only_new_chunks(idx, tmp_path, tiny_bert, monkeypatch):
    counter = Counting(tiny_bert)
    monkeypatch.setattr(index_mod, "load_embedder", lambda ref=None, max_length=None: counter.emb)
    before = open_index(idx)
    old_vectors = {c.chunk_id: before._snap.vectors[i] for i, c in enumerate(before.chunks)}
    new = [{"id": "gift", "text": "Gift cards never expire.", "lang": "en", "tag": "money"},
           {"id": "ship", "text": "Shipping is free over fifty euros.", "lang": "en", "tag": "orders"}]
    stats = add_documents(idx, [_write(tmp_path / "new.jsonl", new)], progress=False)
    assert stats.replaced == 1 and stats.total_chunks == 6 and stats.embedded == 2
    assert sorted(t for t in counter.texts if "probe" not in t) == sorted(r["text"] for r in new)
    after = open_index(idx)
    assert after.info()["counts"] == {"documents": 6, "chunks": 6}
    for i, c in enumerate(after.chunks):  # untouched chunks keep their stored vectors
        if c.doc_id not in ("gift", "ship"):
            assert np.array_equal(after._snap.vectors[i], old_vectors[c.chunk_id])
    assert after.search("free shipping euros", k=1, mode="bm25")[0].text.startswith("Shipping is free")
    counter.texts.clear()
    assert delete_documents(idx, ["gift", "hours", "missing"]) == 2
    assert [t for t in counter.texts if "probe" not in t] == []
    final = open_index(idx)
    assert {c.doc_id for c in final.chunks} == {"ship", "refund", "tuihuo", "fahuo"}
    assert final.search("gift expire", mode="bm25") == []


def test_refresh_and_no_torn_reads_while_writing(idx, tmp_path):
    reader = open_index(idx)
    errors: list[str] = []
    stop = threading.Event()

    def read_loop():
        while not stop.is_set():
            try:
                snap = store.load(idx)
                n = len(snap.chunks)
                if not (snap.vectors.shape[0] == n == snap.bm25.tf.shape[0] == snap.manifest["counts"]["chunks"]):
                    errors.append(f"torn: {n} chunks, {snap.vectors.shape[0]} vectors")
            except Exception as e:  # noqa: BLE001 (any failure is a torn read)
                errors.append(repr(e))

    thread = threading.Thread(target=read_loop)
    thread.start()
    try:
        for n in range(6):
            rows = [{"id": f"extra{n}-{j}", "text": f"extra document {n} {j}"} for j in range(3)]
            add_documents(idx, [_write(tmp_path / f"e{n}.jsonl", rows)], progress=False)
    finally:
        stop.set()
        thread.join()
    assert errors == []
    assert len(reader) == 5 and reader.refresh() and len(reader) == 5 + 18 and not reader.refresh()
    assert len(list(idx.glob("gen-*"))) == store.KEEP  # old generations are collected


def test_empty_index_returns_no_hits(idx):
    delete_documents(idx, [r["id"] for r in FAQ])
    ix = open_index(idx)
    assert len(ix) == 0 and ix.search("anything") == [] and ix.search_many(["a", "b"], mode="bm25") == [[], []]


def test_querying_with_another_model_names_both(idx, tmp_path, tiny_bert):
    import torch
    from transformers import BertModel

    other = tmp_path / "other-bert"
    model = BertModel.from_pretrained(str(tiny_bert))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.5)
    model.save_pretrained(other)
    for f in tiny_bert.iterdir():
        if not (other / f.name).exists():
            (other / f.name).write_bytes(f.read_bytes())
    ix = open_index(idx, embedder=str(other))
    with pytest.raises(LmkError, match="built with the embedding model") as e:
        ix.search("refund")
    assert str(tiny_bert) in e.value.what and str(other) in e.value.what
    assert ix.search("refund", mode="bm25")  # BM25 needs no embedder


def test_not_an_index_damaged_and_empty_build_are_clear_errors(tmp_path, idx, tiny_bert):
    with pytest.raises(LmkError, match="no index at"):
        open_index(tmp_path / "nowhere")
    (tmp_path / "plain").mkdir()
    with pytest.raises(LmkError, match="not an lmkernel index"):
        open_index(tmp_path / "plain")
    gen = store.current(idx)
    (idx / gen / "vectors.npy").unlink()
    with pytest.raises(LmkError, match="damaged"):
        open_index(idx)
    (tmp_path / "empty.txt").write_text("\n", encoding="utf-8")
    with pytest.raises(LmkError, match="no document to index"):
        build_index([tmp_path / "empty.txt"], tmp_path / "idx2", str(tiny_bert), progress=False)
    assert not (tmp_path / "idx2").exists()
    (tmp_path / "plain" / "notes.txt").write_text("mine", encoding="utf-8")
    with pytest.raises(LmkError, match="not an index"):
        build_index([tmp_path / "empty.txt"], tmp_path / "plain", str(tiny_bert), progress=False)


def test_bad_mode_and_k_are_errors(idx):
    with pytest.raises(LmkError, match="unknown search mode"):
        open_index(idx).search("x", mode="fuzzy")
    with pytest.raises(LmkError, match="k must be"):
        open_index(idx).search("x", k=0)


def test_weights_and_given_query_vectors(idx, tiny_bert):
    import torch

    ix = open_index(idx)
    q = "shop open weekdays"
    lexical_only = ix.search_many([q], k=5, weights=(1.0, 0.0))[0]
    bm25 = ix.search(q, k=5, mode="bm25")
    assert [h.chunk_id for h in lexical_only][:len(bm25)] == [h.chunk_id for h in bm25]
    vecs = load_embedder(str(tiny_bert)).embed([q])
    given = ix.search_many([q], k=3, mode="dense", query_vectors=vecs)[0]
    assert [h.chunk_id for h in given] == [h.chunk_id for h in ix.search(q, k=3, mode="dense")]
    threads = torch.get_num_threads()
    ix.search(q)  # one query embeds on one thread, then the setting is restored
    assert torch.get_num_threads() == threads
