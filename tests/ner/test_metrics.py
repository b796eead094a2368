"""seqeval metrics on a known example, and the step_outputs -> metrics seam of the eval loop."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from lmkernel.evaluation.ner_metrics import ner_metrics
from lmkernel.tasks import get_task


def test_seqeval_on_a_known_example():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O", "B-PER"]]
    pred = [["B-PER", "I-PER", "O", "O"], ["B-ORG", "O", "B-LOC"]]
    m = ner_metrics(gold, pred)
    # gold entities: PER x2, LOC, ORG; predicted: PER, ORG (both right), LOC (wrong place)
    assert m["precision"] == pytest.approx(2 / 3)
    assert m["recall"] == pytest.approx(2 / 4)
    assert m["f1"] == pytest.approx(2 * (2 / 3) * 0.5 / (2 / 3 + 0.5))
    assert m["entities"] == 4 and m["sentences"] == 2
    assert m["per_class"]["PER"] == {"precision": 1.0, "recall": 0.5, "f1": pytest.approx(2 / 3), "support": 2}
    assert m["per_class"]["LOC"]["f1"] == 0.0 and m["per_class"]["ORG"]["f1"] == 1.0
    assert m["token_accuracy"] == pytest.approx(5 / 7)


def test_partial_span_is_a_miss_and_nothing_found_is_zero():
    assert ner_metrics([["B-PER", "I-PER"]], [["B-PER", "O"]])["f1"] == 0.0
    empty = ner_metrics([["O", "O"]], [["O", "O"]])
    assert empty["f1"] == 0.0 and empty["per_class"] == {}


def test_step_outputs_keep_only_labelled_words_and_metrics_name_them():
    task = get_task("ner")
    labels = ["O", "B-PER", "I-PER"]
    logits = torch.full((2, 5, 3), -5.0)
    for row, pos, lab in [(0, 1, 1), (0, 2, 2), (0, 3, 0), (1, 1, 1), (1, 2, 0)]:
        logits[row, pos, lab] = 5.0
    batch = {"labels": torch.tensor([[-100, 1, 2, 0, -100], [-100, 1, -100, -100, -100]])}
    out = task.step_outputs(SimpleNamespace(logits=logits), batch)
    assert out == {"pred": [[1, 2, 0], [1]], "gold": [[1, 2, 0], [1]]}
    m = task.metrics(out, labels)
    assert m["f1"] == 1.0 and m["per_class"]["PER"]["support"] == 2
