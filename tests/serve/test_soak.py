"""Soak (slow): a minute of mixed classify / generate / bad / abandoned requests against live servers.

Resident memory and open file descriptors must stay flat after warm-up, and nothing may answer 500.
Bounded: 60 s of load plus warm-up, four client threads.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter

import httpx
import pytest
from serve_helpers import live_server

from lmkernel.serve.app import create_app
from lmkernel.serve.generation.predictor import GenerationPredictor
from lmkernel.serve.predictor import ClassifierPredictor
from lmkernel.serve.settings import ServeSettings

SOAK_SECONDS = float(os.environ.get("LMK_SOAK_SECONDS", "60"))
WARM_SECONDS = 10.0


def _client_loop(kind: int, cls: str, gen: str, stop_at: float, statuses: Counter, lock: threading.Lock) -> None:
    chat = [{"role": "user", "content": "hello how are you"}]
    with httpx.Client(timeout=60) as c:
        i = 0
        while time.monotonic() < stop_at:
            i += 1
            step = (kind + i) % 8
            try:
                if step == 0:
                    r = c.post(f"{cls}/v1/classify", json={"texts": [f"the film was great {i}", "房间太差"]})
                elif step == 1:
                    r = c.post(f"{cls}/v1/classify", content=b'{"texts": [1, \xff', headers={"content-type": "x"})
                elif step == 2:
                    r = c.post(f"{gen}/v1/chat/completions", json={"messages": chat, "max_tokens": 16,
                                                                  "temperature": 0.7, "seed": i})
                elif step == 3:
                    r = c.post(f"{gen}/v1/completions", json={"prompt": "the cat", "max_tokens": 16,
                                                             "stream": True, "stop": ["mat"]})
                elif step == 4:  # a client that walks away mid-stream
                    with c.stream("POST", f"{gen}/v1/completions",
                                  json={"prompt": "a dog", "max_tokens": 120, "stream": True}) as r:
                        next(r.iter_lines())
                elif step == 5:
                    r = c.post(f"{gen}/v1/chat/completions", json={"messages": chat, "max_tokens": -3})
                elif step == 6:
                    r = c.post(f"{gen}/v1/generate", json={"prompt": "x " * 400})
                else:
                    r = c.get(f"{cls}/metrics")
                code = r.status_code
            except httpx.HTTPError as e:
                code = type(e).__name__
            with lock:
                statuses[code] += 1


def _usage() -> tuple[int, int]:
    import psutil

    proc = psutil.Process()
    return proc.memory_info().rss, proc.num_fds()


@pytest.mark.slow
def test_soak_mixed_load_keeps_memory_and_fds_flat(tiny_model, chat_model):
    cls_app = create_app(ServeSettings(max_wait_ms=2), task="classification",
                         load=lambda: ClassifierPredictor(tiny_model))
    gen_app = create_app(ServeSettings(max_new_tokens=128, max_batch=8), task="chat",
                         load=lambda: GenerationPredictor(chat_model))
    statuses: Counter = Counter()
    lock = threading.Lock()
    with live_server(cls_app) as cls, live_server(gen_app) as gen:
        def run(seconds: float) -> None:
            stop_at = time.monotonic() + seconds
            threads = [threading.Thread(target=_client_loop, args=(k, cls, gen, stop_at, statuses, lock))
                       for k in range(4)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(seconds + 120)

        run(WARM_SECONDS)
        rss0, fds0 = _usage()
        run(SOAK_SECONDS)
        time.sleep(1)  # abandoned streams are reaped before the next step
        rss1, fds1 = _usage()
        assert gen_app.state.service.engine.running == 0
    print(f"soak {SOAK_SECONDS:.0f} s: RSS {rss0 / 2**20:.0f} -> {rss1 / 2**20:.0f} MiB, fds {fds0} -> {fds1}, "
          f"statuses {dict(statuses)}")  # the figure BENCHMARKS.md quotes (pytest -s)
    assert 500 not in statuses and "RemoteProtocolError" not in statuses, statuses
    assert statuses[200] > 100 and statuses[422] > 10 and statuses[413] > 5, statuses
    assert rss1 <= rss0 * 1.10, f"RSS grew from {rss0 / 2**20:.0f} to {rss1 / 2**20:.0f} MiB"
    assert fds1 <= fds0 + 10, f"open file descriptors grew from {fds0} to {fds1}"
