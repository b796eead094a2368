"""Console fixtures: a folder with one finished classification run and one chat run, and its data."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from datakit import make_rows, write_csv

KEY = "console-test-key"
SERVER_KEY = "served-model-key"
REPO = Path(__file__).resolve().parents[2]
ALERTS = """rules:
  - name: busy_hour
    when: count > 3
    over: 1h
    severity: critical
    summary: More than three texts classified in an hour
"""  # an hour: once fired it stays firing for the session, whichever test's texts tipped it


def spec_text(model: Path, **train: object) -> str:
    """A classification spec on the tiny BERT; data paths relative to the console's starting folder."""
    settings = {"epochs": 2, "batch_size": 16, "lr": 3e-3, "log_every": 2, "precision": "fp32", **train}
    return ("task: {type: classification}\n"
            "data: {train: data/train.csv, validation: data/dev.csv, test: data/test.csv}\n"
            f"model: {{name: {model}}}\ntuning: {{method: full}}\ntrain: {json.dumps(settings)}\n")


@pytest.fixture(scope="session")
def console_home(tiny_bert, tiny_llama, tmp_path_factory) -> Path:
    """``home/`` (where the console starts: data/) with ``home/runs/tiny`` (done) and ``home/runs/chat``."""
    import lmkernel

    home = tmp_path_factory.mktemp("console-home")
    write_csv(home / "data" / "train.csv", make_rows(160, seed=1))
    write_csv(home / "data" / "dev.csv", make_rows(40, seed=2))
    write_csv(home / "data" / "test.csv", make_rows(40, seed=3))
    spec = home / "tiny.yaml"
    spec.write_text(spec_text(tiny_bert) + f"output: {{dir: {home / 'runs' / 'tiny'}}}\n", encoding="utf-8")
    lmkernel.run(spec, progress=False)
    chat = home / "runs" / "chat"
    shutil.copytree(tiny_llama, chat / "model")
    card = {"task": "chat", "labels": [], "weights": "full", "format": 1, "task_options": {},
            "base_model": str(tiny_llama)}
    (chat / "model" / "lmkernel.json").write_text(json.dumps(card), encoding="utf-8")
    (chat / "spec.yaml").write_text(f"task: {{type: chat}}\nmodel: {{name: {tiny_llama}}}\n", encoding="utf-8")
    return home


def make_study(folder: Path) -> None:
    """A study as ``lmkernel tune`` leaves it mid-search, built with optuna directly: two complete trials, one
    pruned, one failed and one running (intermediate value reported, its run dir's progress.jsonl at step 5)."""
    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution
    from optuna.trial import TrialState

    from lmkernel.search.study import DB, NAME

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    folder.mkdir(parents=True, exist_ok=True)
    study = optuna.create_study(storage=f"sqlite:///{folder / DB}", study_name=NAME, direction="maximize")
    study.set_user_attr("metric", "accuracy")
    space = {"train.lr": FloatDistribution(1e-4, 1e-2, log=True), "train.batch_size": CategoricalDistribution([16, 32])}
    for i, (curve, end) in enumerate([([0.55, 0.6], TrialState.COMPLETE), ([0.4], TrialState.PRUNED),
                                      ([], TrialState.FAIL), ([0.62, 0.7], TrialState.COMPLETE), ([0.65], None)]):
        trial = study.enqueue_trial({"train.lr": 10 ** -(2 + i / 4), "train.batch_size": 16 * (1 + i % 2)}) or \
            study.ask(space)
        run_dir = folder / "trials" / f"{trial.number:04d}"
        run_dir.mkdir(parents=True)
        trial.set_user_attr("run_dir", str(run_dir))
        for at, value in enumerate(curve, start=1):
            trial.report(value, 100 * at)
        if end is None:
            (run_dir / "progress.jsonl").write_text(json.dumps({"event": "train", "step": 5, "total_steps": 20,
                                                               "train_loss": 0.5}) + "\n", encoding="utf-8")
        else:
            study.tell(trial, curve[-1] if end == TrialState.COMPLETE else None, state=end)


def child_env(**extra: str) -> dict[str, str]:
    """This checkout's lmkernel in the child processes, whether or not it is installed."""
    return dict(os.environ, **extra, PYTHONPATH=os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")]))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_up(url: str, proc: subprocess.Popen, timeout: float = 180.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        assert proc.poll() is None, f"the process serving {url} exited at start"
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise AssertionError(f"nothing up at {url}")


def lmkernel_up(command: list[str], cwd: Path, ready: str, **env: str) -> Iterator[str]:
    """``lmkernel COMMAND --port N`` on a free port until the generator is closed; yields its base URL once
    ``ready`` (a path) answers 200."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "lmkernel.cli", *command, "--port", str(port)], cwd=cwd,
                            env=child_env(**env))
    url = f"http://127.0.0.1:{port}"
    try:
        wait_up(url + ready, proc)
        yield url
    finally:
        proc.terminate()
        proc.wait(30)


def serve(run: Path, *args: str, **env: str) -> Iterator[str]:
    """``lmkernel serve RUN`` on a free port until the generator is closed; yields its base URL."""
    yield from lmkernel_up(["serve", str(run), *args], run.parent, "/readyz", **env)


@pytest.fixture(scope="session")
def tiny_server(console_home) -> Iterator[str]:
    """The tiny classifier served with an API key (SERVER_KEY) and an alert rule that fires after four texts."""
    rules = console_home / "alerts.yaml"
    rules.write_text(ALERTS, encoding="utf-8")
    yield from serve(console_home / "runs" / "tiny", "--api-key-env", "LMK_SERVER_KEYS", "--alerts", str(rules),
                     LMK_SERVER_KEYS=SERVER_KEY)


@pytest.fixture(scope="session")
def chat_server(console_home) -> Iterator[str]:
    """The tiny causal LM served without keys."""
    yield from serve(console_home / "runs" / "chat")


def call(url: str, body: dict | None = None, key: str | None = None) -> dict:
    """A direct call to a server (the answer the console must match)."""
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})}
    data = json.dumps(body).encode() if body is not None else None
    with urllib.request.urlopen(urllib.request.Request(url, data=data, headers=headers), timeout=120) as r:
        return json.loads(r.read())
