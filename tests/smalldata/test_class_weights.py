"""train.class_weights: the weights, the weighted loss, the objective that trains it, and the inputs refused."""

from __future__ import annotations

import pytest
import torch

from lmkernel.errors import LmkError, SpecErrors
from lmkernel.evaluation.analysis import prediction_warnings
from lmkernel.spec import TrainSpec, parse_spec
from lmkernel.training.class_weights import describe, weights_for
from lmkernel.training.objective import Step
from lmkernel.training.regularize import smoothed_cross_entropy
from lmkernel.training.robust import build_objective


def test_balanced_is_rows_over_labels_times_count():
    w = weights_for("balanced", ["a", "b"], ["a"] * 30 + ["b"] * 10)
    assert w == pytest.approx([40 / (2 * 30), 40 / (2 * 10)])
    assert weights_for("none", ["a", "b"], ["a", "b"]) is None
    assert weights_for({"b": 3.0}, ["a", "b"], ["a", "b"]) == [1.0, 3.0]
    assert describe(w, ["a", "b"], "balanced") == "balanced: a 0.667, b 2"


def test_weights_change_the_loss():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 0.5]])
    labels = torch.tensor([0, 1, 1])
    plain = torch.nn.functional.cross_entropy(logits, labels)
    assert smoothed_cross_entropy(logits, labels, 0.0, torch.tensor([1.0, 1.0])) == pytest.approx(float(plain))
    heavy_b = smoothed_cross_entropy(logits, labels, 0.0, torch.tensor([1.0, 5.0]))
    assert float(heavy_b) > float(plain)  # the b rows are the worse-predicted ones: weighing them up raises the loss


def test_the_objective_backpropagates_and_logs_the_weighted_loss():
    class Out:
        def __init__(self, logits):
            self.logits, self.loss = logits, torch.tensor(0.0)

    class Task:
        name = "classification"

        def forward(self, model, batch):
            return Out(model(batch["x"]))

    model = torch.nn.Linear(2, 2)
    batch = {"x": torch.tensor([[1.0, 0.0], [0.0, 1.0]]), "labels": torch.tensor([0, 1])}
    seen = []
    def backward(loss):
        seen.append(float(loss.detach()))
        loss.backward()

    step = Step(model, Task(), batch, backward, 1, lambda: model)
    out = build_objective(TrainSpec(), Task(), class_weights=[1.0, 4.0])(step)
    expected = smoothed_cross_entropy(model(batch["x"]), batch["labels"], 0.0, torch.tensor([1.0, 4.0]))
    want = pytest.approx(float(expected.detach()))
    assert seen == [want] and float(out.loss.detach()) == want
    assert model.weight.grad is not None


def test_bad_class_weights_are_refused(tmp_path):
    with pytest.raises(LmkError, match="does not have"):
        weights_for({"c": 2.0}, ["a", "b"], ["a", "b"])
    with pytest.raises(LmkError, match="positive"):
        weights_for({"a": 0.0}, ["a", "b"], ["a", "b"])
    with pytest.raises((LmkError, SpecErrors), match="class_weights"):
        parse_spec({"task": {"type": "ner"}, "data": {"train": str(tmp_path / "t.conll")},
                    "model": {"name": "minilm"}, "train": {"class_weights": "balanced"}})
    with pytest.raises((LmkError, SpecErrors), match="class_weights"):
        parse_spec({"data": {"train": str(tmp_path / "t.csv")}, "model": {"name": "minilm"},
                    "train": {"class_weights": "inverse"}})


def test_one_class_warning_on_a_small_validation_split():
    gold = [0, 1, 2] * 4  # the 60-row CSV: 12 validation rows
    warnings = prediction_warnings(gold, [1] * 12, ["a", "b", "c"])
    assert len(warnings) == 1 and "predicted 'b' for 100% of the 12 rows" in warnings[0]
    assert "train.lr" in warnings[0] and "class_weights" in warnings[0]
    assert prediction_warnings([0] * 12, [0] * 12, ["a", "b"]) == []  # one gold label: predicting it is right
    assert prediction_warnings(gold, gold, ["a", "b", "c"]) == []
