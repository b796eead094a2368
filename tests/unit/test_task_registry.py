"""The task seam: options, metrics and serving pieces come from each task's file through the registry."""

from __future__ import annotations

import pytest

from lmkernel.errors import LmkError
from lmkernel.spec import describe_fields, parse_spec
from lmkernel.tasks import TaskInfo, TaskOptions, register, task_info, task_names

DATA = {"train": "train.csv"}


def test_each_task_brings_its_options_metrics_and_serving():
    for name in task_names():
        info = task_info(name)
        assert info.options.model_fields["type"].default == name and info.metrics
    assert task_info("ner").serving[1].endswith(":NerPredictor")
    assert task_info("translation").shown[-2:] == ("bleu", "chrf")
    assert task_info("pretrain").serving is None  # served as a chat model once trained (lmkernel generate)


def test_spec_task_is_the_chosen_tasks_options():
    spec = parse_spec({"task": {"type": "ner", "tag_column": 1}, "data": DATA})
    assert type(spec.task).__name__ == "Options" and spec.task.tag_column == 1
    assert spec.task.options() == {"tag_column": 1, "tag_scheme": "auto"}
    assert parse_spec({"task": {}, "data": DATA}).task.type == "classification"  # no type: classification
    assert parse_spec({"data": DATA}).task.type == "classification"


@pytest.mark.parametrize(("task", "message", "fix"), [
    ({"type": "nerr"}, "task.type: unknown task 'nerr'", "did you mean 'ner'?"),
    ({"type": "ner", "tag_colum": 1}, "task.tag_colum: not an option of task 'ner'", "did you mean task.tag_column?"),
    ({"type": "classification", "source_lang": "en"}, "not an option of task 'classification'", "its options: none"),
])
def test_task_errors_name_the_key_and_the_fix(task, message, fix):
    with pytest.raises(LmkError) as e:
        parse_spec({"task": task, "data": DATA})
    assert message in e.value.what and fix in (e.value.fix or "")


def test_fields_list_task_options_with_their_tasks():
    rows = {key: desc for key, _, desc in describe_fields()}
    assert rows["task.system_prompt"].startswith("chat, summarization, translation:")
    assert "task.tag_scheme" in rows and "task.type" in rows


def test_register_checks_the_options_type():
    class Options(TaskOptions):
        type: str = "other"

    with pytest.raises(ValueError, match="already registered"):
        register(task_info("ner"))
    with pytest.raises(ValueError, match="must declare type"):
        register(TaskInfo("mine", object, Options, metrics=("loss",)))
