"""A damaged or hand-edited model card is a clear LmkError, never a traceback (issue 21 item 5)."""

from __future__ import annotations

import json

import pytest

from lmkernel.artifact import CARD, read_card
from lmkernel.errors import LmkError

GOOD = {"task": "classification", "labels": ["neg", "pos"], "weights": "full", "base_model": "minilm",
        "max_length": 64, "task_options": {}, "format": 1}


def card_dir(tmp_path, card) -> object:
    d = tmp_path / "model"
    d.mkdir(exist_ok=True)
    if isinstance(card, bytes):
        (d / CARD).write_bytes(card)
    else:
        (d / CARD).write_text(card if isinstance(card, str) else json.dumps(card), encoding="utf-8")
    return d


def test_good_card_reads_unchanged(tmp_path):
    assert read_card(card_dir(tmp_path, GOOD)) == GOOD


@pytest.mark.parametrize("change, expect", [
    ({"task": "regression"}, "unknown task 'regression'"),
    ({"task": 7}, "unknown task 7"),
    ({"labels": "neg,pos"}, "labels must be a list of strings"),
    ({"labels": ["a", "a"]}, "labels has duplicates"),
    ({"max_length": -5}, "max_length must be a positive integer, got -5"),
    ({"max_length": "64"}, "max_length must be a positive integer"),
    ({"weights": None}, "weights must be a string"),
    ({"task": "ner", "task_options": {"tag_column": "last"}}, "task_options: tag_column"),
    ({"task_options": []}, "task_options must be a JSON object"),
    ({"data": {"text_column": 3}}, "column names must be strings"),
])
def test_damaged_fields_are_named(tmp_path, change, expect):
    with pytest.raises(LmkError, match="model card") as e:
        read_card(card_dir(tmp_path, {**GOOD, **change}))
    assert expect in str(e.value)


@pytest.mark.parametrize("text", ["[1, 2]", "{\"task\": ", b"{\"task\": \"\xff\"}"])
def test_unreadable_or_non_object_card(tmp_path, text):
    with pytest.raises(LmkError, match="model card"):
        read_card(card_dir(tmp_path, text))


def test_label_count_that_does_not_match_the_head(tmp_path, tiny_bert):
    import lmkernel
    from lmkernel.artifact import save_artifact
    from lmkernel.models.resolve import load_tokenizer
    from lmkernel.tasks import get_task

    model = get_task("classification").build_model(tiny_bert, ["neg", "pos"])
    run = tmp_path / "run"
    save_artifact(run / "model", model, load_tokenizer(tiny_bert), {**GOOD, "base_model": str(tiny_bert)})
    assert lmkernel.load(run).labels == ["neg", "pos"]
    card = json.loads((run / "model" / CARD).read_text(encoding="utf-8"))
    (run / "model" / CARD).write_text(json.dumps({**card, "labels": ["neg", "pos", "mixed"]}), encoding="utf-8")
    with pytest.raises(LmkError, match="names 3 labels, but the model scores 2"):
        lmkernel.load(run)
