import pytest

from lmkernel.errors import LmkError
from lmkernel.tasks import get_task
from lmkernel.tuning import apply_tuning, count_parameters


@pytest.fixture()
def model(tiny_bert):
    return get_task("classification").build_model(tiny_bert, ["neg", "pos"])


def trainable_names(m):
    return [n for n, p in m.named_parameters() if p.requires_grad]


def test_full_trains_everything(model):
    t, n = count_parameters(apply_tuning(model, "full"))
    assert t == n


def test_full_can_freeze_input_embeddings_under_a_task_head(model):
    m = apply_tuning(model, "full", train_embeddings=False)
    frozen = [n for n, p in m.named_parameters() if not p.requires_grad]
    assert frozen == ["bert.embeddings.word_embeddings.weight"]


def test_full_never_freezes_embeddings_tied_to_an_lm_head(tiny_llama):
    from transformers import AutoModelForCausalLM

    m = apply_tuning(AutoModelForCausalLM.from_pretrained(tiny_llama), "full", train_embeddings=False)
    t, n = count_parameters(m)
    assert t == n


def test_lora_adapts_all_linears_and_trains_head(model):
    m = apply_tuning(model, "lora", r=4, alpha=8, dropout=0.0)
    names = trainable_names(m)
    assert any("lora_A" in n and "query" in n for n in names)
    assert any("lora_A" in n and "intermediate" in n for n in names)
    assert any("classifier" in n for n in names)
    assert not any("word_embeddings" in n for n in names)
    assert any("lora_A" in n and "pooler.dense" in n for n in names)  # BERT's head reads the pooler


def test_lora_defaults_skip_modules_the_model_lacks(tiny_bert):
    m = apply_tuning(get_task("ner").build_model(tiny_bert, ["O", "B-PER", "I-PER"]), "lora", r=4)
    names = trainable_names(m)  # token classification has no pooler: the default list must not fail
    assert any("lora_A" in n and "query" in n for n in names) and not any("pooler" in n for n in names)


def test_lora_unknown_target_module(model):
    with pytest.raises(LmkError, match="not found"):
        apply_tuning(model, "lora", target_modules=["q_proj"])


def test_freeze_head_only_and_top_layers(model):
    names = trainable_names(apply_tuning(model, "freeze", train_top_layers=0))
    assert names and all(n.startswith("classifier") or ".pooler." in "." + n for n in names)
    names = trainable_names(apply_tuning(model, "freeze", train_top_layers=1))
    assert any(".layer.1." in n for n in names) and not any(".layer.0." in n for n in names)


def test_freeze_more_layers_than_model_has(model):
    with pytest.raises(LmkError, match="has 2 layers"):
        apply_tuning(model, "freeze", train_top_layers=5)


def test_lora_plus_gives_b_matrices_their_own_learning_rate(model):
    from lmkernel.training.loop import _optimizer
    from lmkernel.tuning import Tuning

    tuning = Tuning("lora", {"r": 4, "b_lr_ratio": 4.0}, "ner")
    m = tuning.apply(model)
    b_ids = {id(p) for n, p in m.named_parameters() if ".lora_B." in n}
    groups = _optimizer(m, 1e-3, 0.01, tuning).param_groups
    fast = [g for g in groups if g["lr"] == pytest.approx(4e-3)]
    assert len(fast) == 1 and {id(p) for p in fast[0]["params"]} == b_ids
    assert all(g["lr"] == pytest.approx(1e-3) for g in groups if g is not fast[0])
    plain = _optimizer(m, 1e-3, 0.01, Tuning("lora", {"r": 4}, "ner")).param_groups  # ner's default ratio: 1
    assert all(g["lr"] == pytest.approx(1e-3) for g in plain)
    default = _optimizer(m, 1e-3, 0.01, Tuning("lora", {"r": 4}, "classification")).param_groups
    assert sorted(round(g["lr"], 6) for g in default) == [1e-3, 1e-3, 4e-3]  # classification: LoRA+ 4
    plain = _optimizer(m, 1e-3, 0.01).param_groups  # no method: plain groups
    assert all(g["lr"] == pytest.approx(1e-3) for g in plain)
