"""Admission control: a request estimated past the deadline is refused before any compute (issue 21, item 13)."""

from __future__ import annotations

import asyncio
import threading

import pytest
from serve_helpers import FakePredictor, async_serving, chat_serving, serving

from lmkernel.errors import LmkError
from lmkernel.serve.admission import Admission, Rates, calibrate
from lmkernel.serve.app import create_app
from lmkernel.serve.http_errors import ApiError
from lmkernel.serve.settings import ServeSettings


def test_estimates_decide_413_alone_and_429_behind_admitted_work():
    adm = Admission(30.0, Rates(forward=100.0))
    with pytest.raises(ApiError) as e:
        adm.admit_forward(tokens=256 * 512, texts=256, longest=512)
    assert e.value.status == 413
    msg = e.value.message
    assert "estimated 1300 s for 256 texts of up to 512 tokens at ~100 tokens/s, over the 30 s deadline" in msg
    assert "--timeout-s" in msg
    first = adm.admit_forward(tokens=2000, texts=4, longest=500)  # 20 s: fits alone
    with pytest.raises(ApiError) as e:
        adm.admit_forward(tokens=2000, texts=4, longest=500)  # 20 s behind 20 s: the queue's fault
    assert e.value.status == 429 and e.value.headers == {"Retry-After": "10"}
    assert "behind ~20 s of work already admitted" in e.value.message
    adm.release(first)
    adm.release(adm.admit_forward(tokens=2000, texts=4, longest=500))
    assert adm.queued_s == 0


def test_generation_estimates_count_prefill_decode_and_the_prompts_queued():
    adm = Admission(30.0, Rates(prefill=100.0, decode=10.0))
    adm.check_generation(prompt_tokens=1000, new_tokens=100, stream=False, queued_prompt_tokens=0)  # 10 + 10 s
    with pytest.raises(ApiError) as e:
        adm.check_generation(prompt_tokens=1000, new_tokens=256, stream=False, queued_prompt_tokens=0)
    assert e.value.status == 413 and "up to 256 new tokens at ~10 tokens/s" in e.value.message
    assert "stream" in e.value.message
    adm.check_generation(prompt_tokens=1000, new_tokens=256, stream=True, queued_prompt_tokens=0)  # starts in 10 s
    with pytest.raises(ApiError) as e:
        adm.check_generation(prompt_tokens=8191, new_tokens=1, stream=True, queued_prompt_tokens=0)
    assert e.value.status == 413 and "a prompt of 8191 tokens at ~100 tokens/s" in e.value.message
    with pytest.raises(ApiError) as e:
        adm.check_generation(prompt_tokens=1000, new_tokens=1, stream=True, queued_prompt_tokens=2500)
    assert e.value.status == 429 and int(e.value.headers["Retry-After"]) >= 1


def test_measurements_move_the_estimate():
    adm = Admission(30.0, Rates(forward=100.0))
    adm.observe("forward", 1000, 1.0)  # faster than thought
    assert 100.0 < adm.rates.forward < 1000.0
    adm.on_decode_step(rows=4, seconds=0.5, tokens=4)  # no decode rate yet: the first measurement is it
    assert adm.rates.decode == pytest.approx(2.0)


class GatedPredictor(FakePredictor):
    """Runs only while ``gate`` is set, so a request can be held in flight."""

    def __init__(self):
        super().__init__()
        self.gate = threading.Event()
        self.gate.set()

    def __call__(self, items):
        self.gate.wait(30)
        return super().__call__(items)


class CountingPredictor(FakePredictor):
    """Counts the texts it tokenized."""

    encoded = 0

    def encode(self, texts, truncate):
        self.encoded += len(texts)
        return super().encode(texts, truncate)


def test_a_request_too_slow_for_the_deadline_is_refused_before_computing():
    fake = CountingPredictor()
    with serving(lambda: fake, timeout_s=30) as client:
        adm = client.app.state.service.admission
        assert adm is not None and adm.rates.forward > 0  # calibrated at startup
        ran, encoded = len(fake.batches), fake.encoded
        adm.rates.forward = 1.0  # a fake slow machine: one token a second
        r = client.post("/v1/classify", json={"texts": ["a b c d e f g h i j"] * 5, "truncate": True})
        assert r.status_code == 413, r.text  # at least 5 x 8 tokens (truncated): 40 s
        assert "estimated at least 40 s for 5 texts (at least 40 tokens) at ~1 tokens/s, over the 30 s deadline" \
            in r.json()["error"]["message"]
        assert len(fake.batches) == ran and fake.encoded == encoded  # not computed, not even tokenized
        r = client.post("/v1/classify", json={"texts": ["a normal request"]})
        assert r.status_code == 200, r.text
        assert len(fake.batches) == ran + 1


def test_the_queue_is_a_429_with_retry_after_and_frees_when_work_ends():
    fake = GatedPredictor()
    app = create_app(ServeSettings(timeout_s=30, max_wait_ms=0), task="classification", load=lambda: fake)

    async def main():
        async with async_serving(app) as client:
            service = app.state.service
            service.admission.rates.forward = 1.0
            fake.gate.clear()
            body = {"texts": ["a b c d e f g h"] * 2}  # 16 tokens: 16 s alone
            first = asyncio.ensure_future(client.post("/v1/classify", json=body))
            while service.admission.queued_s == 0:
                await asyncio.sleep(0.01)
            second = await client.post("/v1/classify", json=body)
            fake.gate.set()
            return (await first), second, await client.post("/v1/classify", json=body)

    first, second, third = asyncio.run(main())
    assert first.status_code == 200 and third.status_code == 200
    assert second.status_code == 429 and second.headers["Retry-After"] == "2"
    assert "behind ~16 s of work already admitted" in second.json()["error"]["message"]


def test_admission_off_computes_as_before():
    fake = FakePredictor()
    with serving(lambda: fake, admission="off") as client:
        assert client.app.state.service.admission is None
        assert client.post("/v1/classify", json={"texts": ["a b c d e f g h"] * 50}).status_code == 200
    with pytest.raises(LmkError, match="--admission"):
        ServeSettings(admission="maybe")


@pytest.fixture(scope="module")
def chat_client(chat_model):
    with chat_serving(chat_model, max_new_tokens=64) as client:
        yield client


def test_generation_over_the_deadline_is_refused_before_prefill(chat_client):
    service = chat_client.app.state.service
    adm = service.admission
    assert adm.rates.prefill > 0 and adm.rates.decode > 0  # calibrated on the tiny Llama at startup
    saved = Rates(**vars(adm.rates))
    try:
        adm.rates.prefill, adm.rates.decode = 1.0, 1000.0
        steps = service.engine.steps
        long = {"prompt": "the cat sat on the mat " * 10, "raw": True, "max_new_tokens": 4}
        r = chat_client.post("/v1/generate", json=long)
        assert r.status_code == 413, r.text
        assert "estimated" in r.json()["error"]["message"] and "tokens/s" in r.json()["error"]["message"]
        assert service.engine.steps == steps  # no decode step ran
        r = chat_client.post("/v1/generate", json={"prompt": "hi", "raw": True, "max_new_tokens": 2})
        assert r.status_code == 200, r.text  # a normal request still passes

        adm.rates.prefill, adm.rates.decode = 1000.0, 1.0
        slow = {"prompt": "hi", "raw": True, "max_new_tokens": 40}
        r = chat_client.post("/v1/generate", json=slow)
        assert r.status_code == 413 and "stream" in r.json()["error"]["message"]
        r = chat_client.post("/v1/generate", json={**slow, "stream": True})  # only has to start in time
        assert r.status_code == 200, r.text
    finally:
        adm.rates = saved


def test_calibration_measures_the_real_models(tiny_model, chat_model):
    from lmkernel.serve.generation.predictor import GenerationPredictor
    from lmkernel.serve.predictor import ClassifierPredictor

    assert calibrate(ClassifierPredictor(tiny_model), 30).rates.forward > 0
    rates = calibrate(GenerationPredictor(chat_model), 30).rates
    assert rates.prefill > 0 and rates.decode > 0 and rates.forward is None
