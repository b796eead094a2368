"""Causal-LM compression on the tiny Llama: dynamic int8 and weight-only int8/int4 artifacts that
still generate, with logits close to the fp32 model's."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from lmkernel.artifact import load
from lmkernel.cli import app

# Max absolute logit difference against fp32 on the tiny model (logits span about +-1).
INT8_ATOL = 0.05
INT4_ATOL = 0.3
PROMPT = "the film was great and the actors"


@pytest.fixture(scope="module")
def chat_artifact(tiny_llama, tmp_path_factory):
    """tiny_llama saved as a chat artifact, with a few chat rows to measure on."""
    root = tmp_path_factory.mktemp("lm")
    shutil.copytree(tiny_llama, root / "run" / "model")
    card = {"task": "chat", "labels": [], "weights": "full", "format": 1}
    (root / "run" / "model" / "lmkernel.json").write_text(json.dumps(card))
    rows = [{"messages": [{"role": "user", "content": f"say something about film {i}"},
                          {"role": "assistant", "content": "the film was great"}]} for i in range(6)]
    (root / "chat.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return root


def _build(chat_artifact, method: str, **options):
    from lmkernel.compress import get_method
    from lmkernel.compress.workflow import write_artifact

    out = chat_artifact / f"{method}-{options.get('quantize', '')}"
    if not out.exists():
        write_artifact(get_method(method), load(chat_artifact / "run", backend="exact"), out / "model", options)
    return load(out, backend="exact")


def _logits(model) -> torch.Tensor:
    ids = model.tokenizer(PROMPT, return_tensors="pt").input_ids
    with torch.inference_mode():
        return model.model(input_ids=ids).logits[0]


@pytest.mark.parametrize("method,options,atol", [("int8", {}, INT8_ATOL),
                                                 ("weightonly", {"quantize": "int8"}, INT8_ATOL),
                                                 ("weightonly", {"quantize": "int4"}, INT4_ATOL)])
def test_quantized_causal_lm_stays_close_and_generates(chat_artifact, method, options, atol):
    original = load(chat_artifact / "run", backend="exact")
    quantized = _build(chat_artifact, method, **options)
    ref, out = _logits(original), _logits(quantized)
    assert (ref - out).abs().max().item() <= atol
    assert (ref.argmax(-1) == out.argmax(-1)).float().mean().item() >= 0.9
    a = original.generate(PROMPT, max_new_tokens=6, raw=True)[0]
    b = quantized.generate(PROMPT, max_new_tokens=6, raw=True)[0]
    assert len(b["token_ids"]) >= 1 and isinstance(b["text"], str)
    if atol == INT8_ATOL:
        assert a["token_ids"] == b["token_ids"]  # greedy decoding unchanged at int8


def test_int8_quantizes_every_linear_of_a_loaded_causal_lm(chat_artifact):
    """A loaded causal LM's linears are FewRowLinear (a subclass) that quantize_dynamic would skip."""
    import torch.ao.nn.quantized.dynamic as nnqd
    from safetensors import safe_open

    from lmkernel.models.layout import FewRowLinear

    source = load(chat_artifact / "run", backend="exact")
    assert any(isinstance(m, FewRowLinear) for m in source.model.modules())
    model = _build(chat_artifact, "int8")
    with safe_open(model.path / "model.safetensors", "pt") as f:
        assert f.get_slice("model.layers.0.mlp.up_proj.weight").get_dtype() == "I8"
        assert f.get_slice("model.layers.1.self_attn.q_proj.weight").get_dtype() == "I8"
    assert not [m for m in model.model.modules() if isinstance(m, nn.Linear)]  # none left in fp32
    int8 = [m for m in model.model.modules() if isinstance(m, nnqd.Linear)]
    assert len(int8) == 2 * 7 + 1  # q k v o gate up down per layer, plus the head


def test_int8_refuses_to_leave_a_linear_in_fp32(tiny_llama):
    from transformers import AutoModelForCausalLM

    from lmkernel.compress.int8 import quantize_model
    from lmkernel.errors import LmkError

    class MyLinear(nn.Linear):
        pass

    model = AutoModelForCausalLM.from_pretrained(tiny_llama)
    model.model.layers[0].mlp.up_proj.__class__ = MyLinear
    with pytest.raises(LmkError, match="left 1 linear layer.*model.layers.0.mlp.up_proj"):
        quantize_model(model)


def test_weight_only_files_hold_int8_and_packed_int4(chat_artifact):
    from safetensors import safe_open

    from lmkernel.compress.weightonly import WeightOnlyLinear

    sizes = {}
    for bits in ("int8", "int4"):
        model = _build(chat_artifact, "weightonly", quantize=bits)
        path = model.path / "model.safetensors"
        sizes[bits] = path.stat().st_size
        with safe_open(path, "pt") as f:
            w = f.get_slice("model.layers.0.mlp.up_proj.weight")
            assert w.get_dtype() == ("I8" if bits == "int8" else "U8")
            assert w.get_shape() == ([128, 64] if bits == "int8" else [128, 32])  # two int4 values per byte
        layers = [m for m in model.model.modules() if isinstance(m, WeightOnlyLinear)]
        assert len(layers) == 2 * 7 + 1  # q k v o gate up down per layer, plus the (untied) head
        assert model.card["quantization"]["bits"] == int(bits[-1])
    fp32 = (chat_artifact / "run" / "model" / "model.safetensors").stat().st_size
    assert sizes["int4"] < sizes["int8"] < 0.4 * fp32


def test_int4_pack_roundtrip_and_kernel_match():
    from lmkernel.compress.weightonly import WeightOnlyLinear, int4_groups, pack_nibbles, unpack_nibbles

    torch.manual_seed(0)
    w, x = torch.randn(16, 64), torch.randn(3, 5, 64)
    values, scale, zero = int4_groups(w)
    assert torch.equal(unpack_nibbles(pack_nibbles(values)), values)
    deq = ((values.float().view(16, 2, 32) - 8) * scale[..., None] + zero[..., None]).view(16, 64)
    assert (deq - w).abs().max() <= scale.max() / 2 + 1e-5
    layer = WeightOnlyLinear.int4(values, scale, zero, None)
    assert torch.allclose(layer(x), x @ deq.T, atol=1e-4)


def test_compress_cli_on_a_chat_artifact(chat_artifact, tmp_path):
    out = CliRunner().invoke(app, ["compress", str(chat_artifact / "run"), "-m", "weightonly", "--quantize", "int4",
                                   "--data", str(chat_artifact / "chat.jsonl"), "-o", str(tmp_path / "q"),
                                   "--latency-samples", "2", "-q"])
    assert out.exit_code == 0, out.output
    info = json.loads((tmp_path / "q" / "compression.json").read_text())
    assert info["compressed"]["weights"] == "weightonly+int4" and info["ratios"]["size"] < 1
    assert "perplexity" in info["compressed"]["metrics"]
    bad = CliRunner().invoke(app, ["compress", str(chat_artifact / "run"), "-m", "weightonly", "--quantize", "int2",
                                   "-o", str(tmp_path / "b")])
    assert bad.exit_code == 2 and "--quantize 'int2' is not supported by --method weightonly" in bad.output
    bad = CliRunner().invoke(app, ["compress", str(chat_artifact / "run"), "-m", "onnx", "-o", str(tmp_path / "b")])
    assert bad.exit_code == 2 and "--method onnx does not support 'chat' artifacts" in bad.output


@pytest.mark.parametrize("method,options", [("int8", {}), ("weightonly", {"quantize": "int4"})])
@pytest.mark.parametrize("damage", ["truncate", "drop_tensor"])
def test_damaged_quantized_artifact_is_a_clear_error(chat_artifact, tmp_path, method, options, damage):
    from safetensors.torch import load_file, save_file

    from lmkernel.errors import LmkError

    _build(chat_artifact, method, **options)
    broken = tmp_path / "broken"
    shutil.copytree(chat_artifact / f"{method}-{options.get('quantize', '')}", broken)
    weights = broken / "model" / "model.safetensors"
    if damage == "truncate":
        weights.write_bytes(weights.read_bytes()[:1000])
    else:  # a stored Linear's values are gone, its scale is left: a shape/key mismatch, not a crash
        tensors = load_file(str(weights))
        del tensors[next(k for k in tensors if k.endswith("down_proj.weight"))]
        tensors.pop(next(k for k in tensors if k.endswith("embed_tokens.weight")))
        save_file(tensors, str(weights))
    with pytest.raises(LmkError) as err:
        load(broken, backend="exact")
    assert str(weights) in str(err.value.where) and "re-create it with `lmkernel compress`" in err.value.fix
