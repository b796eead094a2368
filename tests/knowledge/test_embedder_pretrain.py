"""A masked-LM pretrain run embeds (its encoder, mean-pooled); runs of tasks that cannot embed are refused."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lmkernel.errors import LmkError
from lmkernel.knowledge.embedder import load_embedder, mean_pool
from lmkernel.knowledge.index import build_index, open_index
from tests.clikit import cli

TEXTS = ["the film was great", "房间 太差", "a", "the hotel was awful and the room was bad"]


def _save_run(root, name, model, tokenizer_dir, card):
    from lmkernel.artifact import save_artifact
    from lmkernel.models.resolve import load_tokenizer

    run = root / name
    save_artifact(run / "model", model, load_tokenizer(tokenizer_dir), card)
    return run


@pytest.fixture(scope="module")
def mlm_run(tiny_bert, tmp_path_factory):
    """A pretrain run as `lmkernel pretrain` writes it (objective mlm): a BertForMaskedLM in run/model/."""
    import torch
    from transformers import BertForMaskedLM

    torch.manual_seed(0)
    model = BertForMaskedLM.from_pretrained(str(tiny_bert))
    with torch.no_grad():  # move the encoder off tiny_bert's weights, so loading the wrong ones shows
        for p in model.bert.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    card = {"task": "pretrain", "labels": [], "base_model": str(tiny_bert), "arch": "encoder", "max_length": 32,
            "task_options": {"objective": "mlm", "mask_prob": 0.15, "whole_word_mask": True}}
    return _save_run(tmp_path_factory.mktemp("mlm"), "mlm-run", model, tiny_bert, card)


def test_a_masked_lm_run_embeds_with_its_encoder_mean_pooled(mlm_run):
    import torch
    from transformers import AutoTokenizer, BertForMaskedLM

    emb = load_embedder(str(mlm_run))
    vectors = emb.embed(TEXTS, batch_size=2)
    assert vectors.shape == (4, 32) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    mlm = BertForMaskedLM.from_pretrained(str(mlm_run / "model")).eval()  # the run's own encoder, by hand
    tok = AutoTokenizer.from_pretrained(str(mlm_run / "model"))
    batch = tok(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        pooled = mean_pool(mlm.bert(**batch).last_hidden_state, batch["attention_mask"])
    expected = torch.nn.functional.normalize(pooled, dim=-1).numpy()
    assert np.allclose(vectors, expected, atol=1e-5)


def test_the_identity_records_the_pooling_and_matches_on_reload(mlm_run, tiny_bert):
    ident = load_embedder(str(mlm_run)).identity
    assert ident["source"] == "pretrain run (masked LM), mean pooling" and ident["dim"] == 32
    assert load_embedder(str(mlm_run / "model")).matches(ident)  # the run or its model/ folder: one model
    assert load_embedder(str(mlm_run)).matches(ident)
    assert not load_embedder(str(tiny_bert)).matches(ident)  # the backbone it started from is another model


def test_an_index_built_with_it_searches(mlm_run, tmp_path):
    docs = tmp_path / "faq.jsonl"
    rows = [{"id": "ship", "text": "Shipping takes three days."}, {"id": "fahuo", "text": "订单一般三天内发货。"},
            {"id": "refund", "text": "Refunds are paid back within ten days."}]
    docs.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    build_index([docs], tmp_path / "idx", model=str(mlm_run), progress=False)
    index = open_index(tmp_path / "idx")
    assert index.manifest["embedder"]["source"] == "pretrain run (masked LM), mean pooling"
    hits = index.search("Refunds are paid back within ten days.", k=3, mode="dense")
    assert hits[0].source == "refund" and len(hits) == 3


def test_the_cli_builds_and_searches_with_a_pretrain_run(mlm_run, tmp_path):
    docs = tmp_path / "guide.md"
    docs.write_text("# Returns\n\nReturn the item within thirty days.\n\n# Delivery\n\nParcels arrive in two days.\n",
                    encoding="utf-8")
    cli("index", "build", docs, "--out", tmp_path / "idx", "--model", mlm_run, "-q")
    hits = json.loads(cli("search", tmp_path / "idx", "parcels arrive", "--json", "--k", "1").output)
    assert hits[0]["source"].startswith("guide.md")


def test_runs_that_cannot_embed_are_refused(tiny_bert, tiny_llama, tmp_path):
    from lmkernel.tasks import get_task

    labels = ["negative", "positive"]
    clf = _save_run(tmp_path, "clf", get_task("classification").build_model(tiny_bert, labels), tiny_bert,
                    {"task": "classification", "labels": labels, "base_model": str(tiny_bert), "max_length": 32})
    with pytest.raises(LmkError, match="the classification run in .* does not make sentence embeddings"):
        load_embedder(str(clf))
    from transformers import LlamaForCausalLM

    clm = _save_run(tmp_path, "clm", LlamaForCausalLM.from_pretrained(str(tiny_llama)), tiny_llama,
                    {"task": "pretrain", "labels": [], "base_model": str(tiny_llama), "arch": "decoder",
                     "task_options": {"objective": "clm"}})
    with pytest.raises(LmkError, match="the pretrain run in .* does not make sentence embeddings"):
        load_embedder(str(clm))
