"""Fuzz the generation prompt path and admission control (issue 21, items 12 and 13).

Three kinds of input: ``prompt_ids`` calls (any prompt or messages, system, raw, task style), /v1/generate
bodies on a tiny chat model, and admission decisions over any rates and sizes. Invariant: token ids or a
clear LmkError; a 200 or a 4xx, never a 5xx; 413 exactly when a request alone is estimated past the
deadline, 429 with Retry-After otherwise.
"""

from __future__ import annotations

import time

import pytest
from fuzzkit import FAST, SLOW, Tally
from hypothesis import given
from hypothesis import strategies as st

from lmkernel.errors import LmkError
from lmkernel.generation import PLAIN, PromptStyle, prompt_ids
from lmkernel.serve.admission import Admission, Rates
from lmkernel.serve.http_errors import ApiError

TEXT = st.text(max_size=30)
ROLES = st.sampled_from(["system", "user", "assistant", "developer", "tool", ""])
MESSAGES = st.lists(st.fixed_dictionaries({"role": ROLES, "content": TEXT}), max_size=4)
STYLES = st.sampled_from([None, PromptStyle(), PromptStyle(system="Be brief."), PLAIN,
                          PromptStyle(source=lambda s: f"Translate this English sentence into German:\n{s}")])

LIB = st.tuples(st.just("lib"), st.one_of(TEXT, MESSAGES), st.one_of(st.none(), TEXT), st.booleans(), STYLES,
                st.booleans())
BODY = st.fixed_dictionaries({}, optional={
    "prompt": st.one_of(TEXT, st.integers(), st.none()), "messages": st.one_of(MESSAGES, TEXT),
    "raw": st.one_of(st.booleans(), st.just("yes")), "max_new_tokens": st.integers(-1, 3),
    "temperature": st.floats(-1, 3, allow_nan=False), "stream": st.booleans(), "truncate": st.booleans()})
HTTP = st.tuples(st.just("http"), BODY)
RATE = st.one_of(st.none(), st.floats(1e-3, 1e6))
ADMIT = st.tuples(st.just("admit"), st.floats(0.01, 600), RATE, RATE, RATE, st.integers(0, 10**6),
                  st.integers(1, 4096), st.booleans(), st.integers(0, 10**6))
CASES = st.one_of(LIB, HTTP, ADMIT)


@pytest.fixture(scope="module")
def tok(tiny_llama):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_llama)


@pytest.fixture(scope="module")
def client(tiny_llama):
    from fastapi.testclient import TestClient

    from lmkernel.artifact import load_generator
    from lmkernel.serve.app import create_app
    from lmkernel.serve.generation.predictor import GenerationPredictor
    from lmkernel.serve.settings import ServeSettings

    lm = load_generator(str(tiny_llama))
    app = create_app(ServeSettings(max_new_tokens=3), task="chat", load=lambda: GenerationPredictor(lm))
    with TestClient(app) as c:
        deadline = time.monotonic() + 60
        while c.get("/readyz").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.02)
        yield c


def _lib(tok, case, tally: Tally) -> None:
    _, given_, system, raw, style, _ = case
    kwargs = {"messages": given_} if isinstance(given_, list) else {"prompt": given_}
    try:
        ids = prompt_ids(tok, system=system, raw=raw, style=style, **kwargs)
    except LmkError as e:
        assert e.what and e.fix, e.render()
        tally.clear_errors += 1
        return
    assert ids and all(isinstance(i, int) for i in ids)
    tally.accepted += 1


def _http(client, body, tally: Tally) -> None:
    r = client.post("/v1/generate", json=body)
    assert r.status_code < 500, (body, r.status_code, r.text)
    if r.status_code == 200:
        tally.accepted += 1
    else:
        err = r.json()["error"]
        assert r.status_code in (413, 422, 429) and err["message"], (body, r.text)
        tally.clear_errors += 1


def _admit(case, tally: Tally) -> None:
    _, deadline, forward, prefill, decode, tokens, texts, stream, queued = case
    adm = Admission(deadline, Rates(forward, prefill, decode))
    refused = 0
    for check in (lambda: adm.admit_forward(tokens, texts, None),
                  lambda: adm.check_generation(tokens, texts, stream, queued)):
        try:
            check()
        except ApiError as e:
            assert e.status in (413, 429) and "estimated" in e.message, e.message
            if e.status == 429:
                assert int(e.headers["Retry-After"]) >= 1
            refused += 1
    if refused:
        tally.clear_errors += 1
    else:
        tally.accepted += 1
    if forward:  # 413 exactly when the request alone is over the deadline
        own = tokens / forward
        try:
            Admission(deadline, Rates(forward=forward)).admit_forward(tokens, texts, None)
            assert own <= deadline
        except ApiError as e:
            assert e.status == 413 and own > deadline


def _run(case, tok, client, tally: Tally) -> None:
    tally.tried += 1
    try:
        {"lib": lambda: _lib(tok, case, tally), "http": lambda: _http(client, case[1], tally),
         "admit": lambda: _admit(case, tally)}[case[0]]()
    except AssertionError as e:
        tally.failures.append(repr(e)[:300])
        raise
    except Exception as e:  # a traceback where a clear error was due
        tally.failures.append(f"{type(e).__name__}: {e}"[:300])
        raise


def test_fuzz_prompts_fast(tok, client):
    tally = Tally("prompts")

    @FAST
    @given(CASES)
    def check(case):
        _run(case, tok, client, tally)

    check()
    assert not tally.failures


@pytest.mark.slow
def test_fuzz_prompts_slow(tok, client):
    tally = Tally("prompts")

    @SLOW
    @given(CASES)
    def check(case):
        try:
            _run(case, tok, client, tally)
        except Exception:
            pass  # counted; hypothesis goes on so the tally covers the whole run

    check()
    print(tally.line())
    assert not tally.failures, tally.failures[:5]
