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


def test_lora_adapts_all_linears_and_trains_head(model):
    m = apply_tuning(model, "lora", r=4, alpha=8, dropout=0.0)
    names = trainable_names(m)
    assert any("lora_A" in n and "query" in n for n in names)
    assert any("lora_A" in n and "intermediate" in n for n in names)
    assert any("classifier" in n for n in names)
    assert not any("word_embeddings" in n for n in names)


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
