"""Checkpoints are safetensors + JSON: they round-trip exactly, never unpickle, and refuse damaged or foreign files."""

from __future__ import annotations

import json
import math
import pickle
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from lmkernel.errors import LmkError
from lmkernel.fsutil import atomic_write_json
from lmkernel.training.checkpoint import STATE_FILE, latest_checkpoint, load_checkpoint, save_checkpoint
from lmkernel.training.statefile import StateFormatError, decode, encode, read_part, write_part


class Tied(nn.Module):
    """Embedding and output head share one weight, as in most causal LMs."""

    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(11, 4)
        self.mid = nn.Linear(4, 4)
        self.head = nn.Linear(4, 11, bias=False)
        self.head.weight = self.emb.weight

    def forward(self, x):
        return self.head(torch.relu(self.mid(self.emb(x)))).logsumexp(-1).mean()


def _setup(seed: int):
    from transformers import get_linear_schedule_with_warmup

    from lmkernel.device import make_accelerator

    acc = make_accelerator("fp32")
    torch.manual_seed(seed)
    model = Tied()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    sched = get_linear_schedule_with_warmup(opt, 2, 10)
    model, opt = acc.prepare(model, opt)
    return acc, model, opt, sched


def _train(model, opt, sched, steps: int) -> None:
    for _ in range(steps):
        model(torch.randint(0, 11, (3, 5))).backward()
        opt.step()
        sched.step()
        opt.zero_grad()


STATE = {"loop": {"epoch": 1, "batch": 2, "loss_sum": 0.25}, "result": {"best_metric": math.nan, "history": []}}


@pytest.fixture()
def saved(tmp_path, capfd):
    acc, model, opt, sched = _setup(0)
    _train(model, opt, sched, 3)
    random.seed(5)
    np.random.seed(5)
    path = save_checkpoint(acc, tmp_path, 3, STATE, model, opt, sched)
    out = capfd.readouterr()
    assert "Removed shared tensor" not in out.out + out.err  # tied weights are stored once, silently
    after = (torch.rand(3), random.random(), np.random.rand())
    return path, model, opt, sched, after


def test_round_trip_is_exact_and_never_unpickles(saved, monkeypatch):
    path, model, opt, sched, _after = saved
    assert not [p for p in path.iterdir() if p.suffix in (".pkl", ".bin", ".pt")]

    def no_pickle(*_a, **_k):
        raise AssertionError("a checkpoint load must not unpickle")

    monkeypatch.setattr(pickle, "load", no_pickle)
    monkeypatch.setattr(pickle, "loads", no_pickle)
    monkeypatch.setattr(torch, "load", no_pickle)
    acc, fresh, fresh_opt, fresh_sched = _setup(1)
    state = load_checkpoint(acc, path, fresh, fresh_opt, fresh_sched)
    assert state["loop"] == STATE["loop"] and math.isnan(state["result"]["best_metric"])
    for (name, a), b in zip(model.state_dict().items(), fresh.state_dict().values()):
        assert torch.equal(a, b), name
    assert fresh.head.weight is fresh.emb.weight
    for a, b in zip(opt.state_dict()["state"].values(), fresh_opt.state_dict()["state"].values()):
        assert all(torch.equal(a[k], b[k]) for k in a)
    assert fresh_opt.state_dict()["param_groups"] == opt.state_dict()["param_groups"]
    assert fresh_sched.state_dict() == sched.state_dict()


def test_rng_restored_exactly(saved):
    path, _model, _opt, _sched, after = saved
    acc, fresh, fresh_opt, fresh_sched = _setup(1)
    load_checkpoint(acc, path, fresh, fresh_opt, fresh_sched)
    t, r, n = torch.rand(3), random.random(), np.random.rand()
    assert torch.equal(t, after[0]) and r == after[1] and n == after[2]


def test_crafted_pickle_is_refused_and_never_run(saved, tmp_path):
    path = saved[0]
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (Path.touch, (marker,))

    (path / "custom_checkpoint_0.pkl").write_bytes(pickle.dumps(Evil()))
    acc, fresh, opt, sched = _setup(1)
    with pytest.raises(LmkError) as e:
        load_checkpoint(acc, path, fresh, opt, sched)
    text = e.value.render()
    assert "custom_checkpoint_0.pkl" in text and "pickle" in text and "delete" in text
    assert not marker.exists()


def test_unknown_file_is_refused(saved):
    path = saved[0]
    (path / "notes.txt").write_text("hi")
    acc, fresh, opt, sched = _setup(1)
    with pytest.raises(LmkError, match="notes.txt is not part of the checkpoint"):
        load_checkpoint(acc, path, fresh, opt, sched)


@pytest.mark.parametrize("part", ["rng-0.json", "rng-0.safetensors", "model.safetensors", "optimizer.safetensors",
                                  "optimizer.json", "scheduler.json"])
def test_truncated_part_is_an_error(saved, part):
    path = saved[0]
    data = (path / part).read_bytes()
    (path / part).write_bytes(data[: len(data) // 2])
    acc, fresh, opt, sched = _setup(1)
    with pytest.raises(LmkError) as e:
        load_checkpoint(acc, path, fresh, opt, sched)
    assert part in e.value.render() and "truncated" in e.value.render()


def test_same_size_edit_is_caught_by_the_checksum(saved):
    path = saved[0]
    data = bytearray((path / "optimizer.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (path / "optimizer.safetensors").write_bytes(bytes(data))
    acc, fresh, opt, sched = _setup(1)
    with pytest.raises(LmkError, match="SHA-256"):
        load_checkpoint(acc, path, fresh, opt, sched)


def test_an_edited_loop_state_is_caught_by_the_manifest_checksum(saved):
    """A value changed in trainer_state.json (still valid JSON) would resume from the wrong place."""
    import json

    path = saved[0]
    manifest = json.loads((path / "trainer_state.json").read_text())
    text = json.dumps(manifest, indent=1)
    edited = text.replace('"step": 3', '"step": 4', 1) if '"step": 3' in text else text.replace("3", "4", 1)
    assert edited != text
    (path / "trainer_state.json").write_text(edited)
    acc, fresh, opt, sched = _setup(1)
    with pytest.raises(LmkError, match="checksum differs"):
        load_checkpoint(acc, path, fresh, opt, sched)


def test_missing_part_is_an_error(saved):
    path = saved[0]
    (path / "rng-0.json").unlink()
    acc, fresh, opt, sched = _setup(1)
    with pytest.raises(LmkError, match="rng-0.json is missing"):
        load_checkpoint(acc, path, fresh, opt, sched)


def test_old_pickle_checkpoint_is_refused_with_a_clear_message(tmp_path):
    old = tmp_path / "checkpoints" / "step-00000003"
    old.mkdir(parents=True)
    (old / STATE_FILE).write_text(json.dumps({"loop": {}, "result": {}}))
    for name in ("custom_checkpoint_0.pkl", "random_states_0.pkl", "optimizer.bin"):
        (old / name).write_bytes(b"\x80\x04N.")
    acc, fresh, opt, sched = _setup(1)
    with pytest.raises(LmkError) as e:
        load_checkpoint(acc, old, fresh, opt, sched)
    text = e.value.render()
    assert "earlier lmkernel" in text and "random_states_0.pkl" in text and "without --resume" in text


def test_latest_pointer_cannot_leave_the_checkpoint_folder(tmp_path):
    root = tmp_path / "checkpoints"
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / STATE_FILE).write_text("{}")
    root.mkdir()
    (root / "latest").write_text("../elsewhere\n")
    assert latest_checkpoint(tmp_path) is None


def test_statefile_keeps_what_json_cannot(tmp_path):
    obj = {"ints": {0: 1, 2: (3, 4.5)}, "nan": math.nan, "inf": -math.inf, "arr": np.arange(5, dtype=np.uint32),
           "t": torch.arange(6).reshape(2, 3), "__odd": None, "nested": [{"a": torch.ones(2)}]}
    write_part(tmp_path, "x", obj)
    text = (tmp_path / "x.json").read_text()
    json.loads(text, parse_constant=lambda c: pytest.fail(f"bare {c}"))  # strict JSON
    back = read_part(tmp_path, "x")
    assert back["ints"] == {0: 1, 2: (3, 4.5)} and math.isnan(back["nan"]) and back["inf"] == -math.inf
    assert back["arr"].dtype == np.uint32 and back["arr"].tolist() == [0, 1, 2, 3, 4]
    assert torch.equal(back["t"], obj["t"]) and torch.equal(back["nested"][0]["a"], torch.ones(2))
    assert back["__odd"] is None


@pytest.mark.parametrize("bad", [{"__tensor__": "nope"}, {"__evil__": 1}, {"__dict__": [[[1], 2]]},
                                 {"__float__": "1e5"}, {"__tuple__": 3}])
def test_decode_refuses_what_it_did_not_write(bad):
    with pytest.raises(StateFormatError):
        decode(bad, {})


def test_encode_refuses_objects():
    with pytest.raises(TypeError):
        encode({"f": object()}, {})


def test_metrics_json_is_strict(tmp_path):
    atomic_write_json(tmp_path / "m.json", {"loss": math.nan, "ppl": math.inf, "rows": [1.5, -math.inf]})
    data = json.loads((tmp_path / "m.json").read_text(), parse_constant=lambda c: pytest.fail(f"bare {c}"))
    assert data == {"loss": None, "ppl": None, "rows": [1.5, None]}
