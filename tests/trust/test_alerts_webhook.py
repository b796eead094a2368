"""Webhook delivery: retried with back-off until the receiver answers, never blocking, drops counted."""

from __future__ import annotations

import pytest
from trust_helpers import receiver

from lmkernel.errors import LmkError
from lmkernel.trust.webhook import Webhook, check_url


@pytest.fixture()
def flaky():
    with receiver(fail_first=2) as (url, calls):
        yield url, calls


def test_retries_then_delivers(flaky):
    url, calls = flaky
    hook = Webhook(url, backoff_s=0.01, seed=0)
    assert hook.send({"status": "firing", "labels": {"alertname": "x"}})
    assert hook.flush(10)
    hook.close()
    assert len(calls) == 3  # failed twice, then 200
    assert calls[-1]["alerts"][0]["labels"]["alertname"] == "x"
    assert hook.stats()["sent"] == 1 and hook.stats()["retries"] == 2 and hook.stats()["failed"] == 0


def test_unreachable_webhook_gives_up_without_raising():
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    hook = Webhook(f"http://127.0.0.1:{port}/", attempts=3, backoff_s=0.01, timeout_s=1)
    hook.send({"status": "firing"})
    assert hook.flush(10)
    hook.close()
    assert hook.stats()["failed"] == 1 and hook.stats()["sent"] == 0


def test_full_queue_drops_and_counts():
    import socket
    import time

    with socket.socket() as silent:  # accepts connections (backlog) and never answers: the sender is stuck
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        hook = Webhook(f"http://127.0.0.1:{silent.getsockname()[1]}/", max_queue=1, attempts=1, timeout_s=2)
        hook.send({"status": "firing"})
        time.sleep(0.2)  # the sender took the first one and waits on the socket
        start = time.perf_counter()
        results = [hook.send({"status": "firing"}) for _ in range(20)]
        assert time.perf_counter() - start < 0.1  # sending never waits on delivery
        assert results.count(True) == 1 and hook.stats()["dropped"] == 19
        hook.close(timeout=0.1)


def test_bad_url():
    with pytest.raises(LmkError, match="not an http"):
        check_url("ftp://example.com")
