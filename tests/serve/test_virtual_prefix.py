"""Prompt- and prefix-tuned causal LMs in the generation engine: the virtual tokens become a prefix of
each row's cache, and greedy tokens equal peft's own ``generate``, alone and batched with other prompts."""

from __future__ import annotations

import pytest
import torch

from lmkernel.serve.generation.engine import Engine
from lmkernel.serve.generation.sampling import SamplingParams
from lmkernel.tuning import Tuning, serving_model

PROMPTS = ["the cat sat on the mat", "hello", "a dog runs in the park today"]


@pytest.fixture(scope="module", params=["prompt", "prefix"])
def tuned(chat_model, request):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    tok = chat_model.tokenizer
    config = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                         eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, tie_word_embeddings=False)
    model = Tuning(request.param, {"num_virtual_tokens": 5}, "chat").apply(LlamaForCausalLM(config))
    with torch.no_grad():  # trained-looking virtual tokens (peft starts them small and random)
        for p in model.prompt_encoder.parameters():
            p.normal_(std=0.5)
    return request.param, model.eval(), tok


def _engine(model, tok) -> Engine:
    return Engine(model, decode=lambda ids: tok.decode(ids, skip_special_tokens=True), eos_ids=[tok.eos_token_id],
                  max_batch=8, max_queue=8)


def _run(engine: Engine, prompts: list[list[int]], n: int) -> list[list[int]]:
    reqs = [engine.submit(ids, SamplingParams(max_new_tokens=n, ignore_eos=True, temperature=0.0), lambda _: None)
            for ids in prompts]
    for _ in range(1000):
        if not (engine.running or engine.depth):
            break
        engine.iterate()
    return [r.tokens for r in reqs]


def _peft_generate(model, tok, ids: list[int], n: int) -> list[int]:
    """Greedy tokens from the peft model's own forward over the whole sequence at every step: what the
    model was trained and evaluated with (peft's ``generate`` drifts from it under transformers 5)."""
    seq = list(ids)
    with torch.no_grad():
        for _ in range(n):
            mask = torch.ones(1, len(seq), dtype=torch.long)
            logits = model(input_ids=torch.tensor([seq]), attention_mask=mask).logits
            seq.append(int(logits[0, -1].argmax()))
    return seq[len(ids):]


def test_engine_matches_peft_generate_alone_and_batched(tuned):
    method, model, tok = tuned
    served = serving_model(model)
    assert served.virtual_tokens == 5
    ids = [tok(p)["input_ids"] for p in PROMPTS]
    want = [_peft_generate(model, tok, x, 8) for x in ids]
    plain = _run(_engine(model.get_base_model(), tok), ids[:1], 8)[0]
    assert plain != want[0]  # the virtual tokens change the output: the check below means something
    assert [_run(_engine(served, tok), [x], 8)[0] for x in ids] == want  # alone
    assert _run(_engine(served, tok), ids, 8) == want  # batched: left padding between prefix and prompt


def test_generate_of_the_served_model_matches_the_forward(tuned):
    """``lmkernel.load(...).generate`` runs transformers' generate on the same wrapper, batched and padded."""
    from lmkernel.generation import generate

    method, model, tok = tuned
    got = generate(serving_model(model), tok, PROMPTS, raw=True, max_new_tokens=6)
    assert [g["token_ids"] for g in got] == [_peft_generate(model, tok, tok(p)["input_ids"], 6) for p in PROMPTS]


def test_a_request_joins_a_running_batch(tuned):
    method, model, tok = tuned
    served = serving_model(model)
    ids = [tok(p)["input_ids"] for p in PROMPTS]
    engine = _engine(served, tok)
    first = engine.submit(ids[0], SamplingParams(max_new_tokens=8, ignore_eos=True, temperature=0.0), lambda _: None)
    for _ in range(3):
        engine.iterate()
    later = engine.submit(ids[2], SamplingParams(max_new_tokens=8, ignore_eos=True, temperature=0.0), lambda _: None)
    while engine.running or engine.depth:
        engine.iterate()
    assert first.tokens == _peft_generate(model, tok, ids[0], 8)
    assert later.tokens == _peft_generate(model, tok, ids[2], 8)


def test_a_prompt_tuned_chat_artifact_serves_as_it_generates(tmp_path, tiny_llama):
    """End to end: train, load, and the server's predictor answers what ``Model.generate`` gives."""
    import json

    import lmkernel
    from lmkernel.serve.routes import load_predictor

    rows = [{"prompt": f"translate to German: {en}", "response": de}
            for en, de in [("hello", "hallo"), ("the cat", "die Katze")] * 6]
    data = tmp_path / "chat.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    spec = tmp_path / "spec.yaml"
    spec.write_text(f"""task: {{type: chat}}
data: {{train: {data}, max_length: 96}}
model: {{name: {tiny_llama}}}
tuning: {{method: prompt, prompt: {{num_virtual_tokens: 4}}}}
train: {{max_steps: 3, batch_size: 4, precision: fp32}}
output: {{dir: {tmp_path / 'run'}}}
""", encoding="utf-8")
    run = lmkernel.run(spec, progress=False).run_dir
    want = lmkernel.load(run).generate("translate to German: hello", max_new_tokens=5)[0]
    predictor = load_predictor(run)
    assert predictor.model.virtual_tokens == 4
    ids = predictor.encode_chat([_Msg("user", "translate to German: hello")], truncate=False)
    engine = predictor.make_engine(max_batch=2, max_queue=2)
    req = engine.submit(ids, SamplingParams(max_new_tokens=5, temperature=0.0), lambda _: None)
    while engine.running or engine.depth:
        engine.iterate()
    assert req.tokens[:len(want["token_ids"])] == want["token_ids"]


class _Msg:
    def __init__(self, role: str, content: str):
        self.role, self.content = role, content

    def text(self) -> str:
        return self.content
