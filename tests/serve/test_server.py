"""`lmkernel serve` for real: CLI errors, help, a uvicorn process that drains in-flight requests on SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time

import httpx
import pytest
from serve_helpers import wait_process_ready
from typer.testing import CliRunner

from lmkernel.cli import app

runner = CliRunner()


def test_help_explains_every_serve_option():
    out = runner.invoke(app, ["serve", "--help"]).output
    assert "Usage" in out and "--max-wait-ms" in out and "--api-key-env" in out
    for flag in ("--drain-s", "--header-timeout-s", "--body-timeout-s", "--max-header-bytes", "--max-connections",
                 "--trusted-proxies", "--max-auth-failures", "--allowed-hosts", "--allowed-origins"):
        assert flag in out, flag
    for line in out.splitlines():
        if line.strip().startswith("│ --") and "--help" not in line:
            assert len(line.split()) > 3, f"option without help: {line}"


@pytest.mark.parametrize("args,message", [
    (["/no/such/run"], "no such run or model directory"),
    (["{run}", "--rate-limit", "lots"], "--rate-limit 'lots' is not a rate"),
    (["{run}", "--api-key-env", "LMK_TEST_UNSET_KEYS"], "no API keys in environment variable LMK_TEST_UNSET_KEYS"),
    (["{run}", "--max-texts", "0"], "--max-texts must be positive"),
    (["{run}", "--trusted-proxies", "10.0.0.1,proxy.local"], "--trusted-proxies: 'proxy.local' is not an IP address"),
    (["{run}", "--drain-s", "-1"], "--drain-s must be 0 or more"),
    (["{run}", "--max-connections", "0"], "--max-connections must be positive"),
])
def test_serve_refuses_bad_arguments_before_starting(tiny_run, args, message):
    result = runner.invoke(app, ["serve", *[a.format(run=tiny_run) for a in args]])
    assert result.exit_code == 2 and message in result.output, result.output


def server_env() -> dict[str, str]:
    """The test's environment without any OpenMP wait policy of its own, so the server's default shows."""
    return {**{k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}, "HF_HUB_OFFLINE": "1"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_sigterm_finishes_in_flight_requests(tiny_run):
    port = free_port()
    env = dict(server_env(), LMK_TEST_KEYS="secret")
    # a long batching wait keeps requests in flight while the signal arrives
    proc = subprocess.Popen([sys.executable, "-m", "lmkernel.cli", "serve", str(tiny_run), "--port", str(port),
                             "--api-key-env", "LMK_TEST_KEYS", "--max-wait-ms", "3000", "--threads", "1",
                             "--workers", "2"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, timeout=30) as client:
            deadline = time.monotonic() + 60
            wait_process_ready(client, proc, timeout=60)
            # bound to 127.0.0.1: a rebound name is refused, the loopback names are served (issue 21 item 14)
            assert client.get("/healthz", headers={"Host": "rebind.example:8000"}).status_code == 400
            assert client.get("/healthz", headers={"Host": f"localhost:{port}"}).status_code == 200
            replies: list[httpx.Response] = []

            def post(i: int) -> None:
                with httpx.Client(base_url=base, timeout=30) as c:
                    replies.append(c.post("/v1/classify", json={"texts": [f"the film was great {i}"]},
                                          headers={"Authorization": "Bearer secret"}))

            threads = [threading.Thread(target=post, args=(i,)) for i in range(8)]
            for t in threads:
                t.start()
            while time.monotonic() < deadline and "lmk_queue_depth 8.0" not in client.get("/metrics").text:
                time.sleep(0.02)  # until all eight wait in the batcher (received, so in flight)
            proc.send_signal(signal.SIGTERM)
            for t in threads:
                t.join(30)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode in (0, -signal.SIGTERM), out  # uvicorn re-raises the signal once drained
    assert [r.status_code for r in replies] == [200] * 8, out
    assert "model tiny-run ready (2 workers, torch threads 1 each, OMP_WAIT_POLICY PASSIVE, unpadded batches)" in out
    assert "Shutting down" in out


def test_cli_serves_a_chat_artifact_and_drains_generations_on_sigterm(chat_run):
    """`lmkernel serve` on a chat artifact; one slot, so at SIGTERM one generation runs and three wait:
    all four (two streamed) still finish."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "lmkernel.cli", "serve", str(chat_run), "--port", str(port),
                             "--max-batch", "1", "--max-new-tokens", "120", "--threads", "1"],
                            env=server_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    replies: list[tuple[int, str]] = []
    try:
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, timeout=60) as client:
            deadline = time.monotonic() + 60
            wait_process_ready(client, proc, timeout=60)
            assert client.get("/v1/models").json()["data"][0]["task"] == "chat"

            def post(i: int) -> None:
                body = {"messages": [{"role": "user", "content": f"hello {i}"}], "max_tokens": 120,
                        "temperature": 0, "stream": i % 2 == 0}
                with httpx.Client(base_url=base, timeout=60) as c:
                    r = c.post("/v1/chat/completions", json=body)
                    replies.append((r.status_code, r.text))

            threads = [threading.Thread(target=post, args=(i,)) for i in range(4)]
            for t in threads:
                t.start()
            while "lmk_queue_depth 3.0" not in client.get("/metrics").text:  # one generating, three waiting
                assert time.monotonic() < deadline, "the requests never queued up"
                time.sleep(0.01)
            proc.send_signal(signal.SIGTERM)
            for t in threads:
                t.join(60)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode in (0, -signal.SIGTERM), out
    assert sorted(status for status, _ in replies) == [200] * 4, (replies, out)
    for _, text in replies:
        assert text.endswith("data: [DONE]\n\n") or '"finish_reason":' in text
    assert "Shutting down" in out and "Traceback" not in out
    assert "OMP_WAIT_POLICY default" in out  # generation keeps OpenMP's spinning workers (settings.py)
