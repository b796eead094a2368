"""The chat forward that runs the batch's common prompt prefix once: same loss, same gradients."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoTokenizer

from lmkernel.tasks import get_task
from lmkernel.tasks.chat import encode_conversation
from lmkernel.tasks.shared_prefix import (
    MIN_PREFIX,
    forward_packed,
    forward_with_shared_prefix,
    packs_attention,
    shared_prefix_length,
    supports_shared_prefix,
)
from lmkernel.tuning import apply_tuning

SYSTEM = {"role": "system", "content": "Translate English to German, please."}
PAIRS = [("a dog runs", "ein Hund rennt"), ("two men are talking in the park", "zwei Männer reden im Park"),
         ("a girl", "ein Mädchen"), ("the red car is parked near the old house", "das rote Auto parkt am alten Haus")]


@pytest.fixture(scope="module")
def tok(tiny_llama):
    return AutoTokenizer.from_pretrained(tiny_llama)


def _batch(task, tok, system=SYSTEM):
    feats = [encode_conversation(tok, [system, {"role": "user", "content": s}, {"role": "assistant", "content": t}],
                                 512) for s, t in PAIRS]
    return task.collate(feats, tok.pad_token_id)


def _loss_and_grads(model, forward, batch):
    model.zero_grad(set_to_none=True)
    out = forward(model, batch)
    out.loss.backward()
    return out, {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}


def test_prefix_stops_before_the_rows_differ_and_before_the_first_kept_logit(tiny_llama, tok):
    task = get_task("translation", {"system_prompt": SYSTEM["content"]})
    task.build_model(tiny_llama, [])
    batch = _batch(task, tok)
    p = shared_prefix_length(batch)
    ids = batch["input_ids"]
    assert p >= MIN_PREFIX
    assert (ids[:, :p] == ids[:1, :p]).all()  # shared by every row ...
    assert not (ids[:, p] == ids[0, p]).all() or batch["logits_to_keep"][:, p].any()  # ... and as long as allowed
    assert not batch["logits_to_keep"][:, :p].any()  # no learnt logit inside the prefix
    assert shared_prefix_length({k: v[:1] for k, v in batch.items() if k != "shift_labels"}) == 0  # one row


FORMS = {"task": lambda task, m, b: task.forward(m, b),
         "two calls": lambda task, m, b: forward_with_shared_prefix(m, b, shared_prefix_length(b)),
         "packed": lambda task, m, b: forward_packed(m, b, shared_prefix_length(b))}


@pytest.mark.parametrize("form", list(FORMS))
@pytest.mark.parametrize("tuning", ["lora", "full"])
def test_loss_logits_and_gradients_equal_the_plain_forward(tiny_llama, tok, tuning, form):
    task = get_task("translation", {"system_prompt": SYSTEM["content"]})
    torch.manual_seed(0)
    model = apply_tuning(task.build_model(tiny_llama, []), tuning, **({"r": 4, "alpha": 8} if tuning == "lora" else {}))
    for name, p in model.named_parameters():  # peft starts B at zero, which would hide LoRA-A gradients
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.1)
    assert task.share_prefix and packs_attention(model)
    batch = _batch(task, tok)
    assert shared_prefix_length(batch) > 0
    plain, g_plain = _loss_and_grads(model, lambda m, b: m(**b), batch)
    shared, g_shared = _loss_and_grads(model, lambda m, b: FORMS[form](task, m, b), batch)
    assert float(shared.loss.detach()) == pytest.approx(float(plain.loss.detach()), rel=1e-5)
    torch.testing.assert_close(shared.logits, plain.logits, rtol=1e-4, atol=1e-5)
    assert g_plain.keys() == g_shared.keys() and g_plain
    for name in g_plain:
        torch.testing.assert_close(g_shared[name], g_plain[name], rtol=1e-3, atol=1e-6, msg=name)
    assert model.config._attn_implementation == "sdpa"  # the packed form puts the model's own back


def test_packed_form_on_a_gpt2_model(tok):
    """Another architecture (learnt absolute positions, fused qkv), with padding inside the suffixes."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_embd=32, n_layer=2, n_head=4, n_positions=256,
                                       bos_token_id=None, eos_token_id=None)).eval()  # eval: no dropout
    task = get_task("translation", {"system_prompt": SYSTEM["content"]})
    task.keep_logits_only_where_learnt = True
    batch = _batch(task, tok)
    assert (batch["attention_mask"] == 0).any()  # rows of different length
    plain, g_plain = _loss_and_grads(model, lambda m, b: m(**b), batch)
    packed, g_packed = _loss_and_grads(model, lambda m, b: forward_packed(m, b, shared_prefix_length(b)), batch)
    assert float(packed.loss.detach()) == pytest.approx(float(plain.loss.detach()), rel=1e-5)
    for name in g_plain:
        torch.testing.assert_close(g_packed[name], g_plain[name], rtol=1e-3, atol=1e-6, msg=name)


def test_short_or_absent_common_prefix_means_no_split():
    ids = torch.tensor([[1, 2, 3, 9, 9, 9, 9, 9], [1, 2, 4, 9, 9, 9, 9, 9]])
    keep = torch.zeros_like(ids, dtype=torch.bool)
    keep[:, 5:7] = True
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "logits_to_keep": keep}
    assert shared_prefix_length(batch) == 0  # rows part after 2 tokens: below MIN_PREFIX
    batch["input_ids"] = torch.tensor([[1, 2, 3, 4, 5, 6, 7, 8]] * 2)
    assert shared_prefix_length(batch) == 5  # identical rows: up to the first kept logit
    batch["attention_mask"] = torch.tensor([[1] * 8, [1, 1, 1, 1, 0, 0, 0, 0]])
    assert shared_prefix_length(batch) == 4  # padding is not shared content
    batch.pop("logits_to_keep")
    assert shared_prefix_length(batch) == 0  # dense logits: the prefix's logits would be needed


def test_sliding_window_models_are_not_split():
    from transformers import MistralConfig, MistralForCausalLM

    cfg = MistralConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                        num_attention_heads=4, num_key_value_heads=2, sliding_window=16)
    assert not supports_shared_prefix(MistralForCausalLM(cfg))
