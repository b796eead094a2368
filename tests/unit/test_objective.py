"""The loop's objective seam and its progress.jsonl event log."""

from __future__ import annotations

import json

import torch

from lmkernel.catalog import read_progress
from lmkernel.pipeline import run
from lmkernel.spec import load_spec
from lmkernel.training.objective import Step, plain, with_penalty


class _Out:
    def __init__(self, loss):
        self.loss = loss


class _Task:
    """A task whose loss is the weight itself (so gradients are easy to read)."""

    name = "toy"

    def forward(self, model, batch):
        return _Out((model.weight * batch["x"]).sum())


def _step(model):
    return Step(model, _Task(), {"x": torch.tensor([2.0])}, lambda loss: loss.backward(), 1, lambda: model)


def test_plain_backpropagates_the_task_loss():
    model = torch.nn.Linear(1, 1, bias=False)
    out = plain(_step(model))
    assert torch.allclose(model.weight.grad, torch.tensor([[2.0]]))
    assert float(out.loss.detach()) == float(model.weight.detach().sum() * 2)


def test_a_penalty_adds_its_gradient_to_the_task_loss():
    model = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(3.0)
    objective = with_penalty(plain, lambda m: (m.weight ** 2).sum())  # d/dw w^2 = 2w = 6
    objective(_step(model))
    assert torch.allclose(model.weight.grad, torch.tensor([[2.0 + 6.0]]))
    model.weight.grad = None
    with_penalty(plain, lambda m: None)(_step(model))  # no term: only the task's gradient
    assert torch.allclose(model.weight.grad, torch.tensor([[2.0]]))


def test_a_run_logs_start_train_eval_and_end_events(spec_file, monkeypatch):
    monkeypatch.chdir(spec_file.parent)
    spec = load_spec(spec_file, ["train.epochs=2", "train.log_every=1"])
    result = run(spec, progress=False)
    events = read_progress(result.run_dir)
    kinds = [e["event"] for e in events]
    assert kinds[0] == "start" and kinds[-1] == "end"
    assert events[0]["total_steps"] == events[-1]["step"] > 0
    train = [e for e in events if e["event"] == "train"]
    assert [e["step"] for e in train] == list(range(1, events[0]["total_steps"] + 1))
    assert all(e["train_loss"] > 0 and e["lr"] >= 0 for e in train)
    evals = [e for e in events if e["event"] == "eval"]
    assert len(evals) == 2 and all(0 <= e["metrics"]["accuracy"] <= 1 for e in evals)
    assert events[-1]["best_metric"] == max(e["metrics"]["accuracy"] for e in evals)


def test_a_torn_last_line_is_skipped(tmp_path):
    (tmp_path / "progress.jsonl").write_text(json.dumps({"event": "start"}) + "\n{\"event\": \"tr", encoding="utf-8")
    assert read_progress(tmp_path) == [{"event": "start"}]
    assert read_progress(tmp_path / "missing") == []
