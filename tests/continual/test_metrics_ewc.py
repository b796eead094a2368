"""The accuracy matrix summaries on a hand-made matrix, the EWC penalty, the buffer and head growth."""

from __future__ import annotations

import pytest
import torch

from lmkernel.continual import ewc
from lmkernel.continual.head import grow
from lmkernel.continual.metrics import markdown, summarise
from lmkernel.continual.state import update_buffer

# R[i][j]: accuracy on task j after stage i
MATRIX = [[0.9, None, None],
          [0.6, 0.8, None],
          [0.7, 0.5, 0.9]]


def test_acc_bwt_forgetting_by_hand():
    s = summarise(MATRIX)
    assert s.acc == pytest.approx((0.7 + 0.5 + 0.9) / 3)
    assert s.bwt == pytest.approx(((0.7 - 0.9) + (0.5 - 0.8)) / 2)  # R[T,j] - R[j,j]
    # task 0: best before the end 0.9, now 0.7 -> 0.2; task 1: best 0.8, now 0.5 -> 0.3
    assert s.forgetting == pytest.approx((0.2 + 0.3) / 2)


def test_single_stage_has_no_bwt_or_forgetting_and_markdown_shows_the_table():
    s = summarise([[0.8]])
    assert s.acc == pytest.approx(0.8) and s.bwt is None and s.forgetting is None
    text = markdown(MATRIX, ["t1", "t2", "t3"])
    assert "| 3 | 70.0 | 50.0 | 90.0 |" in text and "BWT" in text and "-25.0" in text and "25.0" in text


def test_ewc_penalty_zero_at_anchor_positive_away_and_on_old_head_rows():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    anchor = {n: p.detach().clone() for n, p in model.named_parameters()}
    fisher = {n: torch.rand_like(p) + 0.1 for n, p in model.named_parameters()}
    term = ewc.penalty(fisher, anchor, lam=4.0)
    assert float(term(model).detach()) == 0.0
    with torch.no_grad():
        model[0].weight[0, 0] += 0.5
    expected = 4.0 / 2 * float(fisher["0.weight"][0, 0]) * 0.25
    assert float(term(model).detach()) == pytest.approx(expected)
    grown = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 3))  # a head with one more row
    with torch.no_grad():
        grown[0].load_state_dict(model[0].state_dict())
        grown[1].weight[:2] = model[1].weight
        grown[1].weight[2] = 100.0  # the new row is free: no Fisher for it
        grown[1].bias[:2] = model[1].bias
    assert float(term(grown).detach()) == pytest.approx(expected)


def test_fisher_combine_pads_a_grown_head():
    old = {"w": torch.ones(2, 3)}
    new = {"w": torch.full((4, 3), 2.0)}
    out = ewc.combine(old, new, decay=0.5)["w"]
    assert out[:2].eq(2.5).all() and out[2:].eq(2.0).all()


def test_buffer_is_bounded_deterministic_and_keeps_old_classes():
    new = [(f"text {i}", "A") for i in range(50)] + [("only b", "B")]
    first = update_buffer({}, new, 5, seed=1)
    assert len(first["A"]) == 5 and first["B"] == ["only b"]
    assert first == update_buffer({}, new, 5, seed=1)
    second = update_buffer(first, [("c one", "C")], 5, seed=1)
    assert second["A"] == first["A"] and second["C"] == ["c one"]


def test_head_grows_keeping_old_rows(tiny_bert):
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(tiny_bert, num_labels=2)
    before = model.classifier.weight.detach().clone()
    grow(model, ["A", "B"], ["A", "B", "C"])
    assert model.classifier.weight.shape[0] == 3 and torch.equal(model.classifier.weight[:2], before)
    assert model.config.id2label == {0: "A", 1: "B", 2: "C"} and model.num_labels == 3
    out = model(input_ids=torch.tensor([[2, 5, 3]]), labels=torch.tensor([2]))
    assert out.logits.shape == (1, 3) and torch.isfinite(out.loss)


def test_continual_section_on_another_task_is_refused(tmp_path):
    from lmkernel.continual import begin
    from lmkernel.errors import LmkError
    from lmkernel.spec import parse_spec

    (tmp_path / "train.conll").write_text("EU B-ORG\n", encoding="utf-8")
    spec = parse_spec({"task": {"type": "ner"}, "data": {"train": str(tmp_path / "train.conll")},
                       "continual": {"method": "replay"}})
    with pytest.raises(LmkError, match="classification") as e:
        begin(spec, None)
    assert "continual" in e.value.where
    assert begin(parse_spec({"data": {"train": str(tmp_path / "t.csv")}}), None) is None
