"""models/decode.py: the one-forward decode step against transformers' forward, its key/value buffers,
prompt-prefix reuse, and the cases where it must step aside."""

from __future__ import annotations

import logging

import pytest
import torch

from lmkernel.models import decode
from lmkernel.models.decode import mixed_decoder
from lmkernel.serve.generation.engine import Engine
from lmkernel.serve.generation.sampling import SamplingParams


def tiny_llama_model(**overrides):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(1)
    config = dict(vocab_size=300, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, max_position_embeddings=512, tie_word_embeddings=False)
    return LlamaForCausalLM(LlamaConfig(**{**config, **overrides})).eval()


def run(model, decoder, jobs, late=()):
    """Tokens of each (prompt, max_new_tokens) greedy job; ``late`` jobs join after 3 steps."""
    engine = Engine(model, decode=lambda ids: "", eos_ids=[], max_batch=8, max_queue=8, decoder=decoder)
    reqs = [engine.submit(p, SamplingParams(max_new_tokens=n, temperature=0.0, ignore_eos=True), lambda _: None)
            for p, n in jobs]
    for _ in range(3):
        engine.iterate()
    reqs += [engine.submit(p, SamplingParams(max_new_tokens=n, temperature=0.0, ignore_eos=True), lambda _: None)
             for p, n in late]
    while engine.running or engine.depth:
        engine.iterate()
    return [r.tokens for r in reqs]


def test_many_steps_through_small_buffers_match_transformers_forward(monkeypatch):
    """Buffers two columns wide: every few steps they fill, rows leave (trim) and join (merge); the tokens
    are still those of transformers' forward, step for step."""
    monkeypatch.setattr(decode, "SPARE", 2)
    model = tiny_llama_model()
    decoder = mixed_decoder(model)
    assert decoder is not None
    g = torch.Generator().manual_seed(3)
    prompts = [torch.randint(0, 300, (n,), generator=g).tolist() for n in (5, 9, 3, 12, 7)]
    jobs, late = [(prompts[0], 40), (prompts[1], 11), (prompts[2], 25)], [(prompts[3], 30), (prompts[4], 6)]
    want = run(model, None, jobs, late)
    assert min(len(set(t)) for t in want) > 2  # varied tokens: a mix-up between rows would show
    assert run(model, decoder, jobs, late) == want


def test_a_prompt_sharing_the_last_prompts_prefix_reuses_its_keys_and_values():
    model = tiny_llama_model()
    decoder = mixed_decoder(model)
    system = list(range(10, 40))  # a shared template / system prompt
    first, second = system + [50, 51, 52], system + [60, 61]
    want = run(model, None, [(second, 12)])
    sent = []
    step = decoder.step

    def spy(ids, positions, mask, cache, prompts=(), pasts=None):
        sent.extend(len(p) - decoder._reusable(p) for p in prompts)
        return step(ids, positions, mask, cache, prompts, pasts)

    decoder.step = spy
    assert run(model, decoder, [(first, 4)])  # leaves its keys and values behind
    assert run(model, decoder, [(second, 12)]) == want
    assert sent == [len(first), 2]  # the second prompt sent only its own two tokens through the layers
    assert decoder._reusable([99] + system) == 0  # a different first token: nothing shared
    assert decoder._reusable(second) == len(second) - 1  # the same prompt again: all but its last token


def test_it_steps_aside_for_other_models_and_precisions(caplog):
    from transformers import GPT2Config, GPT2LMHeadModel

    caplog.set_level(logging.INFO, logger="lmkernel.models")
    gpt2 = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=50)).eval()
    assert mixed_decoder(gpt2) is None
    assert mixed_decoder(tiny_llama_model().to(torch.bfloat16)) is None
    assert mixed_decoder(tiny_llama_model().train()) is None
    assert mixed_decoder(tiny_llama_model(hidden_act="gelu")) is None
    text = caplog.text
    assert "GPT2LMHeadModel is not one of ['LlamaForCausalLM', 'MistralForCausalLM', 'Qwen2ForCausalLM']" in text
    assert "not fp32 on the CPU" in text and "training mode" in text and "not a plain Llama" in text


def test_a_step_that_disagrees_with_transformers_is_not_used(monkeypatch, caplog):
    caplog.set_level(logging.INFO, logger="lmkernel.models")
    monkeypatch.setattr(decode, "_rotate", lambda x, cos, sin: x)  # a wrong position encoding
    assert mixed_decoder(tiny_llama_model()) is None
    assert "differs from transformers' forward (prefill: logits differ by" in caplog.text


def test_a_decoder_failure_fails_its_requests_and_the_engine_goes_on():
    model = tiny_llama_model()
    decoder = mixed_decoder(model)
    engine = Engine(model, decode=lambda ids: "", eos_ids=[], max_batch=4, max_queue=4, decoder=decoder)
    events = []
    step = decoder.step
    decoder.step = lambda *a: (_ for _ in ()).throw(RuntimeError("out of memory"))
    engine.submit([1, 2, 3], SamplingParams(max_new_tokens=3, temperature=0.0), events.append)
    engine.iterate()
    assert type(events[-1]).__name__ == "Failed" and engine.running == 0
    decoder.step = step
    req = engine.submit([1, 2, 3], SamplingParams(max_new_tokens=3, temperature=0.0, ignore_eos=True), events.append)
    while engine.running or engine.depth:
        engine.iterate()
    assert req.finish_reason == "length" and len(req.tokens) == 3


@pytest.mark.parametrize("rows", [1, 3])
def test_prefix_reuse_and_decode_rows_in_one_forward_match_separate_forwards(rows):
    """A prompt joining ``rows`` running rows, reusing the previous prompt's prefix: same logits as
    transformers' prefill of that prompt alone."""
    model = tiny_llama_model()
    decoder = mixed_decoder(model)
    g = torch.Generator().manual_seed(5)
    base = torch.randint(0, 300, (8,), generator=g).tolist()
    running = [torch.randint(0, 300, (6,), generator=g).tolist() for _ in range(rows)]
    with torch.inference_mode():
        empty = torch.zeros(0, dtype=torch.long)
        _, _, cache = decoder.step(empty, empty, None, None, running)  # rows prefilled; base is not the last
        decoder.step(empty, empty, None, None, [base + [7]])  # leaves base's keys and values
        mask = torch.cat([cache.mask, torch.ones(rows, 1, dtype=torch.long)], 1)
        logits, joined, _ = decoder.step(torch.tensor([5] * rows), cache.mask.sum(1), mask, cache, [base + [9, 9]])
        want = model(input_ids=torch.tensor([base + [9, 9]])).logits[:, -1]
        ref = model(input_ids=torch.tensor([r + [5] for r in running])).logits[:, -1]
    assert torch.allclose(joined, want, atol=1e-4) and torch.allclose(logits, ref, atol=1e-4)


def test_the_generation_server_uses_it_unless_told_not_to(chat_model):
    from lmkernel.serve.generation.predictor import GenerationPredictor

    assert GenerationPredictor(chat_model).decoder is not None
    assert GenerationPredictor(chat_model, prepack=False).decoder is None
    engine = GenerationPredictor(chat_model).make_engine(max_batch=2, max_queue=2)
    assert engine._decoder is not None


def test_it_steps_aside_for_quantized_linear_layers(caplog):
    from lmkernel.compress.int8 import quantize_model

    caplog.set_level(logging.INFO, logger="lmkernel.models")
    assert mixed_decoder(quantize_model(tiny_llama_model())) is None
    assert "its linear layers are not plain fp32 nn.Linear (torch.ao.nn.quantized.dynamic" in caplog.text


def test_kept_prefix_is_bounded_and_buffers_of_a_replaced_cache_are_released(monkeypatch):
    monkeypatch.setattr(decode, "REUSE_TOKENS", 4)
    model = tiny_llama_model()
    decoder = mixed_decoder(model)
    shared = list(range(20, 32))
    assert run(model, decoder, [(shared + [1], 3)])
    assert decoder._last[0] == shared[:4] and decoder._last[1][0][0].shape[1] == 4  # 4 tokens' keys kept
    assert decoder._reusable(shared + [2]) == 4
    want = run(model, None, [(shared + [2], 5)])
    engine = Engine(model, decode=lambda ids: "", eos_ids=[], max_batch=4, max_queue=4, decoder=decoder)
    long = engine.submit(shared + [2], SamplingParams(max_new_tokens=5, temperature=0.0, ignore_eos=True),
                         lambda _: None)
    short = engine.submit([5, 6], SamplingParams(max_new_tokens=2, temperature=0.0, ignore_eos=True), lambda _: None)
    engine.iterate()  # both prefilled
    engine.iterate()  # a decode step: buffers in use; the short request leaves
    assert short.finish_reason == "length" and not decoder._buffers  # the trimmed cache has new tensors
    engine.iterate()
    assert decoder._buffers  # the next step writes into fresh buffers
    while engine.running:
        engine.iterate()
    assert long.tokens == want[0]


@pytest.mark.parametrize("kind", ["qwen2", "mistral"])
def test_qwen2_and_windowless_mistral_run_it_too(kind, caplog):
    """Same decoder layer as Llama (Qwen2 with biases on query/key/value): tokens equal transformers'
    forward, requests joining and leaving. Mistral with a sliding window steps aside."""
    from transformers import AutoConfig, AutoModelForCausalLM

    torch.manual_seed(2)
    shape = dict(vocab_size=300, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, max_position_embeddings=512, tie_word_embeddings=False)
    model = AutoModelForCausalLM.from_config(AutoConfig.for_model(kind, **shape, sliding_window=None)).eval()
    if kind == "qwen2":
        assert model.model.layers[0].self_attn.q_proj.bias is not None
    decoder = mixed_decoder(model)
    assert decoder is not None
    g = torch.Generator().manual_seed(4)
    prompts = [torch.randint(0, 300, (n,), generator=g).tolist() for n in (6, 11, 4)]
    jobs, late = [(prompts[0], 12), (prompts[1], 5)], [(prompts[2], 9), (prompts[1][:8] + [3], 7)]
    assert run(model, decoder, jobs, late) == run(model, None, jobs, late)

    caplog.set_level(logging.INFO, logger="lmkernel.models")
    windowed = AutoModelForCausalLM.from_config(AutoConfig.for_model("mistral", **shape, sliding_window=64)).eval()
    assert mixed_decoder(windowed) is None
    assert "sliding-window attention (64 tokens)" in caplog.text


def test_prompts_prefilled_in_pieces_match_transformers_forward(monkeypatch):
    """Tiny budgets: every prompt is prefilled 3-4 tokens per step, beside running rows, some reusing
    the last prompt's prefix; each request still gets transformers' tokens."""
    from lmkernel.serve.generation import engine as engine_module

    monkeypatch.setattr(engine_module, "PREFILL_TOKENS", 4)
    monkeypatch.setattr(engine_module, "CHUNK_TOKENS", 3)
    model = tiny_llama_model()
    decoder = mixed_decoder(model)
    g = torch.Generator().manual_seed(6)
    prompts = [torch.randint(0, 300, (n,), generator=g).tolist() for n in (9, 14, 5)]
    jobs, late = [(prompts[0], 10), (prompts[1], 6)], [(prompts[2], 8), (prompts[1][:10] + [4, 4], 5)]
    want = run(model, None, jobs, late)
    continued = []  # per step: prompts continuing from their earlier pieces
    step = decoder.step
    decoder.step = lambda *a: continued.append(sum(p is not None for p in a[5])) or step(*a)
    assert run(model, decoder, jobs, late) == want
    assert sum(continued) >= 8  # 40 prompt tokens, 3-4 per step: most prompts took several pieces


def test_a_cancelled_request_mid_prefill_frees_its_slot(monkeypatch):
    from lmkernel.serve.generation import engine as engine_module

    monkeypatch.setattr(engine_module, "PREFILL_TOKENS", 4)
    model = tiny_llama_model()
    engine = Engine(model, decode=lambda ids: "", eos_ids=[], max_batch=1, max_queue=2, decoder=mixed_decoder(model))
    events = []
    long = engine.submit(list(range(10, 30)), SamplingParams(max_new_tokens=3, temperature=0.0), events.append)
    engine.iterate()
    assert engine.running == 1 and long.prefilled == 4 and not long.tokens  # holds the only slot, mid-prompt
    other = engine.submit([5, 6, 7], SamplingParams(max_new_tokens=2, temperature=0.0, ignore_eos=True), lambda _: None)
    engine.iterate()
    assert engine.depth == 1  # still waiting for the slot
    engine.cancel(long)
    while engine.running or engine.depth:
        engine.iterate()
    assert events[-1].finish_reason == "cancelled" and not long.tokens
    assert other.finish_reason == "length" and len(other.tokens) == 2


def test_a_prompt_in_three_pieces_gives_the_logits_of_one_forward():
    model = tiny_llama_model()
    decoder = mixed_decoder(model)
    ids = torch.randint(0, 300, (13,), generator=torch.Generator().manual_seed(8)).tolist()
    empty = torch.zeros(0, dtype=torch.long)
    with torch.inference_mode():
        past = None
        for end in (4, 9, 13):
            _, last, kv = decoder.step(empty, empty, None, None, [ids[:end]], [past])
            past = kv.parts[0]
            assert past[0][0].shape[1] == end  # keys of every token so far
        want = model(input_ids=torch.tensor([ids])).logits[:, -1]
    assert torch.allclose(last, want, atol=1e-5)


def test_a_step_that_fails_its_check_is_not_used(monkeypatch, caplog):
    caplog.set_level(logging.INFO, logger="lmkernel.models")

    def broken(self, *args, **kwargs):
        raise RuntimeError("an op this layer variant lacks")

    monkeypatch.setattr(decode.MixedDecoder, "step", broken)
    assert mixed_decoder(tiny_llama_model()) is None
    assert "differs from transformers' forward (RuntimeError: an op this layer variant lacks)" in caplog.text
