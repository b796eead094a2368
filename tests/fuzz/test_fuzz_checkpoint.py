"""Fuzz the checkpoint reader: whatever happens to a checkpoint folder (truncated, bit-flipped or extra
files, edited JSON), ``--resume`` loads it exactly or stops with an LmkError; it never unpickles,
never raises anything else. And the state encoding round-trips any nested state exactly.
"""

from __future__ import annotations

import json
import math
import pickle
import shutil
from pathlib import Path

import pytest
import torch
from fuzzkit import FAST, SLOW, Tally
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from lmkernel.errors import LmkError
from lmkernel.training.checkpoint import STATE_FILE, load_checkpoint, save_checkpoint
from lmkernel.training.statefile import StateFormatError, decode, encode

PARTS = ["model.safetensors", "optimizer.json", "optimizer.safetensors", "scheduler.json", "rng-0.json",
         "rng-0.safetensors", STATE_FILE]


def _setup():
    from transformers import get_linear_schedule_with_warmup

    from lmkernel.device import make_accelerator

    acc = make_accelerator("fp32")
    torch.manual_seed(0)
    model = nn.Sequential(nn.Embedding(7, 4), nn.Linear(4, 7))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    sched = get_linear_schedule_with_warmup(opt, 1, 5)
    model, opt = acc.prepare(model, opt)
    return acc, model, opt, sched


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    acc, model, opt, sched = _setup()
    model(torch.tensor([[1, 2]])).sum().backward()
    opt.step()
    sched.step()
    state = {"loop": {"epoch": 0, "batch": 1, "loss_sum": 0.5}, "result": {"history": [{"step": 1}]}}
    return save_checkpoint(acc, tmp_path_factory.mktemp("ckpt"), 1, state, model, opt, sched)


mutation = st.one_of(
    st.tuples(st.just("truncate"), st.sampled_from(PARTS), st.floats(0, 0.999)),
    st.tuples(st.just("flip"), st.sampled_from(PARTS), st.floats(0, 0.999), st.integers(1, 255)),
    st.tuples(st.just("extra"), st.text("abcdefgh_-.0123456789", min_size=1, max_size=12),
              st.sampled_from([".pkl", ".bin", ".pt", ".json", ".safetensors", ".txt", ""])),
    st.tuples(st.just("delete"), st.sampled_from(PARTS)),
    st.tuples(st.just("json"), st.sampled_from([p for p in PARTS if p.endswith(".json")]),
              st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
                           lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=10), c, max_size=3),
                           max_leaves=8)),
)


def _mutate(folder: Path, m: tuple) -> bool:
    """Apply ``m``; False when nothing a reader sees changed (every byte, or trainer_state.json's JSON value)."""
    before = (folder / STATE_FILE).read_text()
    changed = _apply(folder, m)
    if changed and m[0] in ("truncate", "flip") and m[1] == STATE_FILE:
        try:
            return json.loads((folder / STATE_FILE).read_text()) != json.loads(before)
        except ValueError:
            return True
    return changed


def _apply(folder: Path, m: tuple) -> bool:
    kind, name = m[0], m[1]
    path = folder / name
    if kind == "truncate":
        data = path.read_bytes()
        path.write_bytes(data[: int(len(data) * m[2])])
    elif kind == "flip":
        data = bytearray(path.read_bytes())
        data[int(len(data) * m[2])] ^= m[3]
        path.write_bytes(bytes(data))
    elif kind == "extra":
        target = folder / (name + m[2])
        if target.name in ("", ".", "..") or target.exists():
            return False
        target.write_bytes(pickle.dumps({"x": 1}) if m[2] in (".pkl", ".bin", ".pt") else b"{}")
    elif kind == "delete":
        path.unlink()
    else:
        old = path.read_text()
        new = json.dumps(m[2])
        if new == old.strip():
            return False
        path.write_text(new)
    return True


def _attempt(template: Path, work: Path, m: tuple, tally: Tally) -> None:
    folder = work / "step"
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(template, folder)
    changed = _mutate(folder, m)
    acc, model, opt, sched = _setup()
    tally.tried += 1
    try:
        load_checkpoint(acc, folder, model, opt, sched)
    except LmkError as e:
        tally.clear_errors += 1
        if "checkpoint" not in e.what or not e.fix:
            tally.failures.append(f"{m}: unclear error {e.render()!r}")
        return
    except Exception as e:  # noqa: BLE001 - exactly what the invariant forbids
        tally.failures.append(f"{m}: {type(e).__name__}: {e}")
        return
    tally.accepted += 1
    if changed:
        tally.failures.append(f"{m}: a changed checkpoint loaded silently")


def _no_pickle(monkeypatch) -> None:
    def refuse(*_a, **_k):
        raise AssertionError("a checkpoint load unpickled something")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(torch, "load", refuse)


def test_fuzz_checkpoint_fast(template, tmp_path, monkeypatch):
    _no_pickle(monkeypatch)
    tally = Tally("checkpoint")

    @FAST
    @given(mutation)
    def check(m):
        _attempt(template, tmp_path, m, tally)

    check()
    assert not tally.failures, tally.failures[:5]


state_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**62, 2**62) | st.floats() | st.text(max_size=6)
    | st.builds(lambda n: torch.arange(n, dtype=torch.float32), st.integers(0, 4)),
    lambda c: st.lists(c, max_size=3) | st.tuples(c, c) | st.dictionaries(st.text(max_size=6) | st.integers(0, 9),
                                                                          c, max_size=3),
    max_leaves=12)


def _same(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, float):
        return isinstance(b, float) and (a == b or (math.isnan(a) and math.isnan(b)))
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return isinstance(b, dict) and list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


@FAST
@given(state_values)
def test_fuzz_checkpoint_state_round_trip(obj):
    tensors: dict[str, torch.Tensor] = {}
    text = json.dumps(encode(obj, tensors), allow_nan=False)
    assert _same(obj, decode(json.loads(text), tensors))


TAGS = ["__tensor__", "__tuple__", "__dict__", "__float__", "__ndarray__"]
json_leaves = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
               | st.text(max_size=8) | st.sampled_from(TAGS + ["nan", "inf", "int8", "0:."]))
json_values = st.recursive(json_leaves, lambda c: st.lists(c, max_size=3) | st.dictionaries(
    st.sampled_from(TAGS + ["dtype", "__x", "a"]), c, max_size=2), max_leaves=10)


@FAST
@given(json_values)
def test_fuzz_checkpoint_decode_any_json(data):
    try:
        decode(data, {})
    except StateFormatError:
        pass


@pytest.mark.slow
def test_fuzz_checkpoint_slow(template, tmp_path, monkeypatch):
    import time

    _no_pickle(monkeypatch)
    tally = Tally("checkpoint")
    start = time.perf_counter()

    @SLOW
    @given(mutation)
    def check(m):
        _attempt(template, tmp_path, m, tally)

    check()
    print(f"\n{tally.line()} ({time.perf_counter() - start:.0f} s)")
    assert not tally.failures, tally.failures[:5]
