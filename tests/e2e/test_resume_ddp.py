"""Crash safety, exact resume and multi-process training, each in real subprocesses."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest


def lmk(*args: str, cwd: Path, fault: str | None = None, launcher: list[str] | None = None):
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    env.pop("LMKERNEL_FAULT", None)
    if fault:
        env["LMKERNEL_FAULT"] = fault
    cmd = (launcher or [sys.executable, "-m"]) + ["lmkernel.cli", *args]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


COMMON = ["-q", "--set", "train.precision=fp32", "--set", "train.checkpoint_every=3", "--set", "train.threads=1"]


def metrics(run: Path) -> dict:
    return json.loads((run / "metrics.json").read_text())


def test_kill_9_then_resume_matches_uninterrupted_run(spec_file):
    cwd = spec_file.parent
    done = lmk("run", str(spec_file), *COMMON, "--set", "output.dir=ref", cwd=cwd)
    assert done.returncode == 0, done.stderr
    reference = metrics(cwd / "ref")
    # mid-epoch 1, inside a checkpoint save, mid-epoch 2 after an evaluation
    for fault in ("step:7", "save:6", "step:14"):
        _crash_and_resume(spec_file, reference, fault)
        _same_weights(cwd / "ref", cwd / f"crash-{fault.replace(':', '-')}")


def _same_weights(a: Path, b: Path) -> None:
    """Bit for bit: the resumed run restored weights, optimizer, scheduler and RNG exactly."""
    import torch
    from safetensors.torch import load_file

    want, got = load_file(str(a / "model" / "model.safetensors")), load_file(str(b / "model" / "model.safetensors"))
    assert want.keys() == got.keys()
    assert all(torch.equal(want[k], got[k]) for k in want)


def _crash_and_resume(spec_file: Path, reference: dict, fault: str) -> None:
    cwd = spec_file.parent
    run = cwd / f"crash-{fault.replace(':', '-')}"
    killed = lmk("run", str(spec_file), *COMMON, "--set", f"output.dir={run.name}", cwd=cwd, fault=fault)
    assert killed.returncode == -signal.SIGKILL
    assert not (run / "metrics.json").exists() and (run / "checkpoints" / "latest").exists()
    if fault.startswith("save"):  # the half-written checkpoint never became "latest"
        assert list((run / "checkpoints").glob("*.tmp"))
        assert (run / "checkpoints" / "latest").read_text().strip() == "step-00000003"
    resumed = lmk("run", str(spec_file), *COMMON, "--set", f"output.dir={run.name}", "--resume", cwd=cwd)
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed from" in resumed.stdout
    got = metrics(run)
    for split in ("validation", "test"):
        assert got[split]["loss"] == pytest.approx(reference[split]["loss"], abs=1e-6)
        assert got[split]["accuracy"] == reference[split]["accuracy"]
    assert got["training"]["optimizer steps"] == reference["training"]["optimizer steps"]


def test_resume_without_checkpoint_is_a_clear_error(spec_file):
    done = lmk("run", str(spec_file), "-q", "--resume", "--set", "output.dir=none", cwd=spec_file.parent)
    assert done.returncode == 2 and "nothing to resume" in done.stderr


def test_corrupt_checkpoint_names_the_file_and_fix(spec_file):
    cwd = spec_file.parent
    lmk("run", str(spec_file), *COMMON, "--set", "output.dir=bad", cwd=cwd, fault="step:7")
    latest = cwd / "bad" / "checkpoints" / (cwd / "bad" / "checkpoints" / "latest").read_text().strip()
    (latest / "model.safetensors").write_bytes(b"corrupt")
    done = lmk("run", str(spec_file), *COMMON, "--set", "output.dir=bad", "--resume", cwd=cwd)
    assert done.returncode == 2 and "cannot be loaded" in done.stderr and "delete" in done.stderr


def _killed_run(spec_file: Path, name: str) -> Path:
    """A run killed at step 7: its latest checkpoint (step 6) is what --resume reads."""
    cwd = spec_file.parent
    lmk("run", str(spec_file), *COMMON, "--set", f"output.dir={name}", cwd=cwd, fault="step:7")
    root = cwd / name / "checkpoints"
    return root / (root / "latest").read_text().strip()


def test_resume_refuses_a_crafted_pickle_without_running_it(spec_file, tmp_path):
    import pickle

    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (Path.touch, (marker,))

    latest = _killed_run(spec_file, "evil")
    (latest / "custom_checkpoint_0.pkl").write_bytes(pickle.dumps(Evil()))
    done = lmk("run", str(spec_file), *COMMON, "--set", "output.dir=evil", "--resume", cwd=spec_file.parent)
    assert done.returncode == 2 and "custom_checkpoint_0.pkl" in done.stderr and "pickle" in done.stderr
    assert "Traceback" not in done.stderr and not marker.exists()


def test_resume_refuses_truncated_random_states(spec_file):
    latest = _killed_run(spec_file, "trunc")
    rng = latest / "rng-0.json"
    rng.write_bytes(rng.read_bytes()[:100])
    done = lmk("run", str(spec_file), *COMMON, "--set", "output.dir=trunc", "--resume", cwd=spec_file.parent)
    assert done.returncode == 2 and "rng-0.json is truncated" in done.stderr and "delete" in done.stderr
    assert not (spec_file.parent / "trunc" / "metrics.json").exists()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_cpu_processes_with_gloo_train(spec_file):
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                "--master_port", str(_free_port()), "-m"]
    done = lmk("run", str(spec_file), "-q", "--set", "train.precision=fp32", "--set", "output.dir=ddp",
               "--set", "train.epochs=4", "--set", "train.batch_size=8", cwd=spec_file.parent, launcher=launcher)
    assert done.returncode == 0, done.stderr[-3000:]
    m = metrics(spec_file.parent / "ddp")
    assert m["training"]["processes"] == 2
    assert m["accuracy"] > 0.8
    assert m["validation"]["examples"] == 40  # every validation row counted once across ranks
