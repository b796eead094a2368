"""What each tuning method promises beyond the conformance suite: AdaLoRA's ranks move and its state
is checkpointed, adapters start as the identity, and the spec refuses what a method cannot do."""

from __future__ import annotations

import json

import pytest
import torch

import lmkernel
from lmkernel.errors import LmkError
from lmkernel.spec import load_spec
from lmkernel.tuning import Options, Tuning, methods, register


def _run(spec_file, *overrides: str):
    return lmkernel.run(spec_file, overrides=list(overrides), progress=False)


def test_adalora_ranks_move_away_from_init_r(spec_file):
    run = _run(spec_file, "tuning.method=adalora", "tuning.adalora.init_r=6", "tuning.adalora.target_r=2",
               "train.epochs=2", "train.lr=1e-2")
    config = json.loads((run.run_dir / "model" / "adapter_config.json").read_text())
    ranks = [sum(v) for v in config["rank_pattern"].values()]
    assert ranks and min(ranks) < 6  # peft alone (no update_and_allocate) would leave every module at 6
    assert sum(ranks) <= 2 * len(ranks) + 1  # the budget ends near target_r per module on average
    assert config["total_step"] == 20  # 160 rows / 16 per batch x 2 epochs, set by the before_train hook


def test_adalora_state_is_checkpointed_as_safetensors_and_json(spec_file):

    run = _run(spec_file, "tuning.method=adalora", "tuning.adalora.init_r=4", "tuning.adalora.target_r=2",
               "train.epochs=1", "train.keep_optimizer=true")
    ckpt = next((run.run_dir / "checkpoints").glob("step-*"))
    assert (ckpt / "method_state.safetensors").is_file()  # (empty at the end: peft resets scores once ranks are final)
    state = json.loads((ckpt / "trainer_state.json").read_text())["state"]
    assert "method_state.safetensors" in json.loads((ckpt / "trainer_state.json").read_text())["files"]
    assert state["method_tensors"] is True and state["method"]["rank_pattern"]


def test_adalora_hooks_save_and_restore_the_importance_scores(tiny_bert):
    from lmkernel.tasks import get_task
    from lmkernel.tuning import adalora

    def fresh():
        tuning = Tuning("adalora", {"init_r": 4, "target_r": 2}, "classification")
        return tuning, tuning.apply(get_task("classification").build_model(tiny_bert, ["a", "b"]))

    tuning, model = fresh()
    adalora.before_train(model, 50, tuning.options)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    batch = {"input_ids": torch.tensor([[2, 7, 9, 3], [2, 8, 6, 3]]), "labels": torch.tensor([0, 1])}
    for step in range(1, 9):  # past tinit (5 steps): scores accumulate and ranks start to move
        model(**batch).loss.backward()
        opt.step()
        adalora.after_step(model, step, tuning.options)
        opt.zero_grad()
    meta, tensors = adalora.state(model, tuning.options)
    assert any(k.startswith("exp_avg_ipt/") for k in tensors) and meta["rank_pattern"]

    _, other = fresh()
    adalora.load_state(other, meta, tensors, tuning.options)
    restored = other.base_model.rankallocator.exp_avg_ipt
    assert restored and all(torch.equal(restored[k], tensors[f"exp_avg_ipt/{k}"]) for k in restored)
    assert other.peft_config["default"].rank_pattern == meta["rank_pattern"]


def test_adapter_starts_as_identity_and_trains_few_parameters(tiny_bert):
    from lmkernel.tasks import get_task

    base = get_task("classification").build_model(tiny_bert, ["a", "b"]).eval()
    ids = {"input_ids": torch.tensor([[2, 7, 9, 3]])}
    with torch.no_grad():
        before = base(**ids).logits.clone()
    for placement, count in (("houlsby", 4), ("pfeiffer", 2)):  # per 2 layers: attention + FFN, or FFN only
        model = get_task("classification").build_model(tiny_bert, ["a", "b"])
        model.load_state_dict(base.state_dict())
        model = Tuning("adapter", {"placement": placement}, "classification").apply(model).eval()
        wrapped = [n for n, m in model.named_modules() if type(m).__name__ == "BottleneckAdapter"]
        assert len(wrapped) == count
        with torch.no_grad():
            assert torch.allclose(model(**ids).logits, before, atol=1e-6)
        trainable = {n for n, p in model.named_parameters() if p.requires_grad}
        assert all(".base." not in n for n in trainable) and any(".up." in n for n in trainable)


@pytest.mark.parametrize(("overrides", "message"), [
    (["task.type=ner", "tuning.method=prompt"], "does not apply to task 'ner'"),
    (["tuning.method=prefix"], "does not apply to task 'classification'"),
    (["tuning.method=prompt", "tuning.merge=true"], "cannot merge"),
    (["tuning.method=adaptor"], "did you mean 'adapter'"),
    (["tuning.adalora.init_rank=4"], "tuning.adalora.init_rank: unknown key"),
    (["tuning.adalora.target_r=20"], "above init_r"),
    (["tuning.prompt.init=text"], "init_text is empty"),
])
def test_spec_refuses_what_a_method_cannot_do(spec_file, overrides, message):
    with pytest.raises(LmkError, match=message):
        load_spec(spec_file, overrides)


def test_every_method_has_a_spec_section_and_a_default_lr(spec_file):
    spec = load_spec(spec_file, ["tuning.method=ia3", "train.lr="])
    assert spec.train.lr == methods()["ia3"].default_lr != methods()["full"].default_lr  # not full's lr
    for name, method in methods().items():
        assert isinstance(spec.tuning.options(name), method.options) and method.default_lr > 0
    old = load_spec(spec_file, ["tuning.train_embeddings=false"])  # the pre-plugin key still works
    assert old.tuning.full.train_embeddings is False


def test_register_rejects_duplicates_and_bad_options():
    with pytest.raises(ValueError, match="already registered"):
        register("lora", Options, lambda m, o, c: m, default_lr=1e-3, summary="x")
    with pytest.raises(TypeError, match="must subclass"):
        register("mine", dict, lambda m, o, c: m, default_lr=1e-3, summary="x")


def test_fields_lists_every_method_section():
    from typer.testing import CliRunner

    from lmkernel.cli import app

    out = CliRunner().invoke(app, ["fields", "tuning"])
    assert out.exit_code == 0
    for name in methods():
        assert f"tuning.{name}." in out.output
    assert "tuning.lora.use_dora" in out.output and "tuning.adapter.placement" in out.output
    bad = CliRunner().invoke(app, ["fields", "tunning"])
    assert bad.exit_code != 0 and "no spec key under 'tunning'" in bad.output


def test_rslora_default_lr_keeps_the_update_size_of_lora(spec_file):
    plain = load_spec(spec_file, ["tuning.method=lora", "train.lr=", "tuning.lora.r=16"]).train.lr
    rs = load_spec(spec_file, ["tuning.method=lora", "train.lr=", "tuning.lora.r=16", "tuning.lora.use_rslora=true"])
    assert rs.train.lr == pytest.approx(plain / 4)  # alpha/sqrt(16) is 4x alpha/16


def test_adapter_refuses_an_architecture_it_does_not_know():
    from torch import nn

    class Tiny(nn.Module):
        config = type("C", (), {"model_type": "toy"})()

        def __init__(self):
            super().__init__()
            self.proj = nn.Linear(4, 4)

    with pytest.raises(LmkError, match="do not know where to go in a toy model"):
        Tuning("adapter", {}, "classification").apply(Tiny())


def test_adapter_artifact_on_another_base_is_an_error(tmp_path, tiny_bert):
    from safetensors.torch import save_file

    from lmkernel.tasks import get_task
    from lmkernel.tuning import adapters

    model = Tuning("adapter", {}, "classification").apply(get_task("classification").build_model(tiny_bert, ["a", "b"]))
    adapters.save(model, tmp_path, merge=False)
    save_file({"bert.encoder.layer.9.output.dense.down.weight": torch.zeros(2, 2)},
              str(tmp_path / adapters.WEIGHTS_FILE))  # tensors of a deeper model
    base = get_task("classification").build_model(tiny_bert, ["a", "b"])
    with pytest.raises(LmkError, match="do not fit the base model"):
        adapters.load(base, tmp_path, {"task": "classification", "base_model": str(tiny_bert)})
    (tmp_path / "adapter_config.json").write_text("{", encoding="utf-8")
    with pytest.raises(LmkError, match="cannot read the adapters"):
        adapters.load(base, tmp_path, {"task": "classification"})
    with pytest.raises(LmkError, match="cannot merge"):
        adapters.save(model, tmp_path, merge=True)


def test_ia3_feedforward_modules_must_be_targets(tiny_bert):
    from lmkernel.tasks import get_task

    model = get_task("classification").build_model(tiny_bert, ["a", "b"])
    with pytest.raises(LmkError, match="subset of tuning.ia3.target_modules"):
        options = {"target_modules": ["key"], "feedforward_modules": ["output.dense"]}
        Tuning("ia3", options, "classification").apply(model)
    with pytest.raises(LmkError, match=r"target module\(s\) \['nope'\] not found"):
        Tuning("ia3", {"target_modules": ["nope"]}, "classification").apply(model)


def test_an_artifact_of_an_unknown_method_names_it(tmp_path):
    from lmkernel.artifact import load_model_weights

    with pytest.raises(LmkError, match="tuning method 'mystery', which this lmkernel does not have"):
        load_model_weights(tmp_path, {"weights": "adapter", "tuning": "mystery", "labels": []}, None)


def test_a_run_whose_examples_all_exceed_max_length_says_so(tmp_path, tiny_llama):
    data = tmp_path / "chat.jsonl"
    data.write_text('{"prompt": "translate to German: hello", "response": "hallo"}\n' * 4, encoding="utf-8")
    spec = tmp_path / "spec.yaml"
    spec.write_text(f"task: {{type: chat}}\ndata: {{train: {data}, max_length: 4}}\nmodel: {{name: {tiny_llama}}}\n"
                    f"output: {{dir: {tmp_path / 'run'}}}\n", encoding="utf-8")
    with pytest.raises(LmkError, match="none of the 4 training examples is left after encoding"):
        _run(spec)
