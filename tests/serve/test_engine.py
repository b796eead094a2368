"""The continuous-batching engine, driven step by step on the tiny Llama: joins, leaves, exactness.

Every test runs twice: prefills and decode steps as transformers forwards, and as one forward per
step through ``models/decode.py``'s MixedDecoder (what the server runs for Llama-family models)."""

from __future__ import annotations

import pytest
import torch

from lmkernel.models.cachearg import cache_name
from lmkernel.models.layout import use_few_row_linears
from lmkernel.serve.generation.engine import Delta, Done, Engine
from lmkernel.serve.generation.sampling import SamplingParams
from lmkernel.serve.generation.text import TextStream

GREEDY = {"temperature": 0.0}


@pytest.fixture(scope="module", params=["forward", "mixed"])
def lm(chat_model, request):
    """The tiny chat tokenizer with an untied random Llama: the fixture's tied one greedily repeats its
    last prompt token forever, which would make "same tokens batched as alone" a weak check."""
    import types

    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    tok = chat_model.tokenizer
    config = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                         eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, tie_word_embeddings=False)
    model = LlamaForCausalLM(config).eval()
    assert use_few_row_linears(model) > 0  # as lmkernel.load serves a causal LM
    decoder = None
    if request.param == "mixed":
        from lmkernel.models.decode import mixed_decoder

        decoder = mixed_decoder(model)
        assert decoder is not None
    return types.SimpleNamespace(model=model, tokenizer=tok, decoder=decoder)


def make_engine(lm, max_batch: int = 8, max_queue: int = 8) -> Engine:
    tok = lm.tokenizer
    engine = Engine(lm.model, decode=lambda ids: tok.decode(ids, skip_special_tokens=True),
                    eos_ids=[tok.eos_token_id], max_batch=max_batch, max_queue=max_queue, decoder=lm.decoder)
    engine.trace = []
    return engine


def prompt(lm, text: str) -> list[int]:
    return lm.tokenizer(text)["input_ids"]


def drain(engine: Engine) -> None:
    for _ in range(10_000):
        if not (engine.running or engine.depth):
            return
        engine.iterate()
    raise AssertionError("engine did not finish")


def alone(lm, ids: list[int], params: SamplingParams) -> list[int]:
    engine = make_engine(lm)
    req = engine.submit(ids, params, lambda _: None)
    drain(engine)
    return req.tokens


def test_greedy_engine_matches_transformers_generate(lm):
    ids = prompt(lm, "the cat sat on the mat")
    got = alone(lm, ids, SamplingParams(max_new_tokens=12, ignore_eos=True, **GREEDY))
    with torch.no_grad():
        want = lm.model.generate(torch.tensor([ids]), max_new_tokens=12, min_new_tokens=12, do_sample=False,
                                         pad_token_id=lm.tokenizer.pad_token_id)[0, len(ids):].tolist()
    assert got == want


def test_requests_join_between_steps_and_match_their_solo_runs(lm):
    """A (greedy, 16 tokens) runs alone for 3 steps; B (greedy, shorter prompt) and C (seeded sampling,
    longer prompt) join; each leaves when done; every one produces exactly its solo tokens."""
    a = (prompt(lm, "the cat sat on the mat"), SamplingParams(max_new_tokens=16, ignore_eos=True, **GREEDY))
    b = (prompt(lm, "hello"), SamplingParams(max_new_tokens=6, ignore_eos=True, **GREEDY))
    c = (prompt(lm, "zwei Menschen gehen auf der Straße und ein Hund"),
         SamplingParams(max_new_tokens=10, temperature=0.9, top_k=50, top_p=0.95, seed=7, ignore_eos=True))
    solo = [alone(lm, *x) for x in (a, b, c)]
    assert min(len(set(t)) for t in solo) > 3  # varied tokens: a mix-up between rows would show
    assert solo[2] == alone(lm, *c)  # the seed makes sampling repeatable

    engine = make_engine(lm)
    ra = engine.submit(*a, lambda _: None)
    for _ in range(3 if lm.decoder is None else 4):  # a one-forward prefill has no decode step with it
        engine.iterate()
    assert len(ra.tokens) == 4 and engine.running == 1  # prefill token + 3 decode steps
    rb = engine.submit(*b, lambda _: None)
    rc = engine.submit(*c, lambda _: None)
    drain(engine)
    assert [ra.tokens, rb.tokens, rc.tokens] == solo
    batches = [ids for _, ids in engine.trace]
    assert batches[:3] == [(ra.id,)] * 3  # A alone first
    assert (ra.id, rb.id, rc.id) in batches  # all three decoded in one step
    assert batches[-1] == (ra.id,)  # B and C left when done; A went on alone
    assert all(rb.id not in step for step in batches[batches.index((ra.id, rb.id, rc.id)) + 5:])
    assert ra.finish_reason == rb.finish_reason == "length"


def test_requests_admitted_together_share_one_prefill_and_match_their_solo_runs(lm):
    """Four prompts of different lengths arrive in the same round: one left-padded prefill; the one that
    ends at its first token leaves before the batch forms, and the others still get their solo tokens."""
    texts = ["hello", "the cat sat on the mat", "zwei Menschen gehen auf der Straße und ein Hund", "a b"]
    jobs = [(prompt(lm, t), SamplingParams(max_new_tokens=n, ignore_eos=True, **GREEDY))
            for t, n in zip(texts, (7, 9, 1, 5))]
    solo = [alone(lm, *job) for job in jobs]
    prefills = []
    owner, name = (lm.model, "forward") if lm.decoder is None else (lm.decoder, "step")
    forward = getattr(owner, name)

    def counting(*args, **kwargs):
        if lm.decoder is not None:
            prefills.append(len(args[4]))  # prompts joining this step
        elif kwargs.get(cache_name()) is None:  # no cache passed: a prefill
            prefills.append(kwargs["input_ids"].shape)
        return forward(*args, **kwargs)

    engine = make_engine(lm)
    reqs = [engine.submit(*job, lambda _: None) for job in jobs]
    setattr(owner, name, counting)
    try:
        drain(engine)
    finally:
        delattr(owner, name)
    assert [r.tokens for r in reqs] == solo
    if lm.decoder is None:
        assert prefills == [(4, max(len(ids) for ids, _ in jobs))]  # one batched prefill for all four
    else:
        assert prefills[0] == 4 and not any(prefills[1:])  # all four in the first forward
    assert engine.trace[0][1] == (reqs[0].id, reqs[1].id, reqs[3].id)  # the 1-token request never decoded


def test_prefill_batches_are_bounded_in_padded_tokens(lm, monkeypatch):
    """At most PREFILL_TOKENS prompt tokens per prefill forward. One-forward steps: a long prompt is
    prefilled in pieces across steps (CHUNK_TOKENS while others decode) and still gets its solo tokens."""
    from lmkernel.serve.generation import engine as engine_module

    monkeypatch.setattr(engine_module, "PREFILL_TOKENS", 12)
    monkeypatch.setattr(engine_module, "CHUNK_TOKENS", 5)
    params = SamplingParams(max_new_tokens=3, ignore_eos=True, **GREEDY)
    long_text = "zwei Menschen gehen auf der Straße und ein Hund"
    jobs = [(prompt(lm, t), params) for t in ("a b", "c d", long_text, "e f")]
    assert len(jobs[2][0]) > 12
    solo = [alone(lm, *job) for job in jobs]
    engine = make_engine(lm)
    reqs = [engine.submit(*job, lambda _: None) for job in jobs]
    groups = engine_module._prefill_groups(reqs)
    assert [len(g) for g in groups] == [2, 1, 1]  # the long prompt goes alone; padding never exceeds 12
    steps = []  # per one-forward step: (running rows, [(prompt tokens computed, up to)])
    if lm.decoder is not None:
        step = lm.decoder.step

        def spy(ids, positions, mask, cache, prompts=(), pasts=None):
            known = [0 if p is None else p[0][0].shape[1] for p in (pasts or [None] * len(prompts))]
            steps.append((len(ids), [(len(x) - k, len(x)) for x, k in zip(prompts, known)]))
            return step(ids, positions, mask, cache, prompts, pasts)

        lm.decoder.step = spy
    try:
        drain(engine)
    finally:
        if lm.decoder is not None:
            del lm.decoder.step
    assert [r.tokens for r in reqs] == solo
    if lm.decoder is not None:
        for rows, pieces in steps:
            assert sum(n for n, _ in pieces) <= (5 if rows else 12)
        long_pieces = [upto for _, pieces in steps for _, upto in pieces if upto > 3]
        assert len(long_pieces) >= 3 and long_pieces[-1] == len(jobs[2][0])  # prefilled in pieces, to its end


def test_slots_limit_the_batch_and_the_queue_refuses_beyond(lm):
    from lmkernel.serve.batcher import QueueFull

    engine = make_engine(lm, max_batch=2, max_queue=1)
    ids = prompt(lm, "hello")
    params = SamplingParams(max_new_tokens=4, ignore_eos=True, **GREEDY)
    reqs = [engine.submit(ids, params, lambda _: None)]
    engine.iterate()
    reqs.append(engine.submit(ids, params, lambda _: None))
    engine.iterate()
    reqs.append(engine.submit(ids, params, lambda _: None))  # waits: both slots taken
    with pytest.raises(QueueFull):
        engine.submit(ids, params, lambda _: None)
    drain(engine)
    assert max(len(ids) for _, ids in engine.trace) == 2
    assert all(len(r.tokens) == 4 for r in reqs)


def test_cancel_frees_the_slot_before_the_next_step(lm):
    engine = make_engine(lm, max_batch=1)
    events: list = []
    ids = prompt(lm, "hello")
    long = engine.submit(ids, SamplingParams(max_new_tokens=200, ignore_eos=True, **GREEDY), events.append)
    engine.iterate()
    waiting = engine.submit(ids, SamplingParams(max_new_tokens=2, ignore_eos=True, **GREEDY), lambda _: None)
    engine.iterate()
    assert engine.running == 1 and engine.depth == 1
    engine.cancel(long)
    drain(engine)
    assert long.finish_reason == "cancelled" and len(long.tokens) < 10
    assert isinstance(events[-1], Done) and events[-1].finish_reason == "cancelled"
    assert waiting.finish_reason == "length" and len(waiting.tokens) == 2


def test_eos_and_stop_strings_end_a_request_and_stay_out_of_its_text(lm):
    tok = lm.tokenizer
    ids = prompt(lm, "the cat")
    free = alone(lm, ids, SamplingParams(max_new_tokens=12, ignore_eos=True, **GREEDY))
    text = tok.decode(free, skip_special_tokens=True)
    stop = text[3:5]
    assert stop.strip() and stop in text
    events: list = []
    engine = make_engine(lm)
    req = engine.submit(ids, SamplingParams(max_new_tokens=12, stop=(stop,), **GREEDY), events.append)
    drain(engine)
    done = events[-1]
    assert req.finish_reason == "stop" and done.text == text[:text.index(stop)]
    assert "".join(e.text for e in events if isinstance(e, Delta)) == done.text

    engine = make_engine(lm)
    k = next(i for i in range(1, len(free)) if free[i] not in free[:i])
    engine.eos_ids = frozenset({free[k]})  # pretend a later token is end-of-sequence
    req = engine.submit(ids, SamplingParams(max_new_tokens=12, **GREEDY), lambda _: None)
    drain(engine)
    assert req.finish_reason == "stop" and req.tokens == free[:k + 1]


def test_penalties_change_greedy_output_deterministically(lm):
    ids = prompt(lm, "the cat sat on the mat")
    plain = alone(lm, ids, SamplingParams(max_new_tokens=16, ignore_eos=True, **GREEDY))
    rep = SamplingParams(max_new_tokens=16, ignore_eos=True, repetition_penalty=5.0, **GREEDY)
    freq = SamplingParams(max_new_tokens=16, ignore_eos=True, frequency_penalty=2.0, presence_penalty=2.0, **GREEDY)
    for params in (rep, freq):
        got = alone(lm, ids, params)
        assert got == alone(lm, ids, params)
        assert len(set(got)) >= len(set(plain))  # penalising repeats never yields fewer distinct tokens
    assert alone(lm, ids, rep) != plain or len(set(plain)) == 16


@pytest.mark.parametrize("pieces,stop,want_deltas,want_text", [
    (["ab", "abc", "abcXY", "abcXYd"], ("XYZ",), ["ab", "c", "", "XYd"], "abcXYd"),  # held, then released
    (["ab", "abX", "abXYZq"], ("XYZ",), ["ab", "", ""], "ab"),  # stop string cut, never sent
    (["a\ufffd", "a\u00e9", "a\u00e9b"], (), ["a", "\u00e9", "b"], "a\u00e9b"),  # half a character held back
])
def test_text_stream_holds_back_partial_stops_and_characters(pieces, stop, want_deltas, want_text):
    stream = TextStream(lambda toks: pieces[len(toks) - 1], stop)
    deltas = [stream.push(list(range(i + 1))) for i in range(len(pieces))]
    assert deltas == want_deltas and stream.text == want_text


def test_extreme_sampling_parameters_never_fail(lm):
    ids = prompt(lm, "the cat sat on the mat")
    greedy = alone(lm, ids, SamplingParams(max_new_tokens=6, ignore_eos=True, **GREEDY))
    assert alone(lm, ids, SamplingParams(max_new_tokens=6, ignore_eos=True, temperature=1e-30, seed=1)) == greedy
    for params in (SamplingParams(max_new_tokens=6, ignore_eos=True, temperature=2.0, top_p=1e-9, top_k=1_000_000),
                   SamplingParams(max_new_tokens=6, ignore_eos=True, temperature=2.0, repetition_penalty=10.0,
                                  frequency_penalty=-2.0, presence_penalty=2.0, seed=2**63 - 1)):
        assert len(alone(lm, ids, params)) == 6


def test_a_request_cancelled_while_waiting_frees_its_queue_place(lm):
    from lmkernel.serve.batcher import QueueFull

    engine = make_engine(lm, max_batch=1, max_queue=1)
    ids = prompt(lm, "hello")
    params = SamplingParams(max_new_tokens=3, ignore_eos=True, **GREEDY)
    engine.submit(ids, params, lambda _: None)
    engine.iterate()
    events: list = []
    waiting = engine.submit(ids, params, events.append)
    with pytest.raises(QueueFull):
        engine.submit(ids, params, lambda _: None)
    engine.cancel(waiting)
    engine.iterate()
    assert engine.depth == 0 and events[-1].finish_reason == "cancelled"
    engine.submit(ids, params, lambda _: None)  # room again
    drain(engine)
