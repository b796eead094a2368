"""The gain guard end to end on the tiny BERT: both runs trained, the better kept, both reported."""

from __future__ import annotations

import json

import pytest

from lmkernel.augment.guard import _better
from lmkernel.errors import LmkError


def _spec(tmp_path, tiny_bert, augment: str):
    """A small two-language spec on the tiny BERT (48 training rows, 24 validation rows, no test split)."""
    from datakit import make_rows, write_csv

    from lmkernel.spec import load_spec

    write_csv(tmp_path / "data" / "train.csv", make_rows(48, seed=1))
    write_csv(tmp_path / "data" / "dev.csv", make_rows(24, seed=2))
    path = tmp_path / "aug.yaml"
    path.write_text(f"""task: {{type: classification}}
data: {{train: data/train.csv, validation: data/dev.csv, max_length: 16, augment: {augment}}}
model: {{name: {tiny_bert}}}
tuning: {{method: full}}
train: {{epochs: 1, batch_size: 16, lr: 3e-3}}
output: {{dir: runs/tiny}}
""", encoding="utf-8")
    return load_spec(path)


def test_better_prefers_plain_on_a_tie_and_reads_loss_downwards():
    assert _better("accuracy", 0.80, 0.85) == "with"
    assert _better("accuracy", 0.85, 0.80) == "without"
    assert _better("accuracy", 0.80, 0.80) == "without"
    assert _better("loss", 0.5, 0.4) == "with"


def test_guard_trains_both_and_keeps_the_better(tmp_path, tiny_bert):
    import lmkernel
    from lmkernel.pipeline import run

    spec = _spec(tmp_path, tiny_bert, "{ops: [swap, delete], n_aug: 2, alpha: 0.2}")
    result = run(spec, progress=False)
    parent = result.run_dir
    aug = result.metrics["augmentation"]
    values = aug["validation"]
    assert set(values) == {"without", "with"} and all(isinstance(v, float) for v in values.values())
    assert aug["kept"] == ("with" if values["with"] > values["without"] else "without")
    assert result.metrics["validation"]["accuracy"] == values[aug["kept"]]
    assert sum(aug["added"].values()) > 0 and aug["training_rows"] == 48
    rows = (parent / "augment" / "train-augmented.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(rows) == 48 + sum(aug["added"].values())
    assert json.loads(rows[0]).keys() == {"text", "label"}
    report = (parent / "report.md").read_text(encoding="utf-8")
    assert "## Augmentation" in report and "| swap |" in report and "kept" in report
    other = "without" if aug["kept"] == "with" else "with"
    other_dir = parent / {"with": "with-augment", "without": "without-augment"}[other]
    assert (other_dir / "report.md").exists() and not (other_dir / "model").exists()
    assert json.loads((parent / "metrics.json").read_text())["augmentation"]["kept"] == aug["kept"]
    assert lmkernel.load(parent).predict(["the film was great"])[0]["label"] in ("positive", "negative")


def test_without_validation_the_guard_says_so(tmp_path, tiny_bert):
    from lmkernel.pipeline import run

    spec = _spec(tmp_path, tiny_bert, "{ops: [swap]}")
    spec.data.validation = None
    with pytest.raises(LmkError) as e:
        run(spec, progress=False)
    assert "no validation split" in e.value.what and e.value.where == "data.augment.guard"
    assert not (tmp_path / "runs").exists()  # nothing was trained


def test_resume_is_refused(tmp_path, tiny_bert):
    from lmkernel.pipeline import run

    with pytest.raises(LmkError, match="--resume cannot continue a run with data.augment"):
        run(_spec(tmp_path, tiny_bert, "{ops: [swap]}"), resume=True, progress=False)


def _fake_run(scores: dict[str, float], calls: list):
    """pipeline.run's stand-in: records the spec, writes a run folder, returns the given validation score."""
    from lmkernel.rundir import RunResult

    def run_fn(spec, **_kw):
        calls.append(spec)
        out = spec.output.dir
        out.mkdir(parents=True, exist_ok=True)
        (out / "model").mkdir()
        (out / "report.md").write_text("# report\n", encoding="utf-8")
        key = "with" if spec.data.train.name == "train-augmented.jsonl" else "without"
        return RunResult(out, {"accuracy": scores[key], "validation": {"accuracy": scores[key]}})

    return run_fn


@pytest.mark.parametrize("scores, kept", [({"without": 0.8, "with": 0.9}, "with"),
                                          ({"without": 0.9, "with": 0.8}, "without")])
def test_guard_keeps_whichever_run_validates_better(tmp_path, tiny_bert, scores, kept):
    from lmkernel.augment.guard import run_augmented

    calls: list = []
    result = run_augmented(_spec(tmp_path, tiny_bert, "{ops: [swap], n_aug: 1}"), _fake_run(scores, calls))
    assert [c.data.augment for c in calls] == [None, None]
    assert [c.data.train.name for c in calls] == ["train.jsonl", "train-augmented.jsonl"]
    assert all(c.data.validation == calls[0].data.validation for c in calls)  # judged on the same rows
    assert result.metrics["augmentation"]["kept"] == kept
    assert result.metrics["validation"]["accuracy"] == max(scores.values())
    assert (result.run_dir / "model").is_dir()
    assert "| " + kept + " augmentation" in (result.run_dir / "report.md").read_text(encoding="utf-8")


def test_guard_false_trains_only_the_augmented_run(tmp_path, tiny_bert):
    from lmkernel.augment.guard import run_augmented

    calls: list = []
    spec = _spec(tmp_path, tiny_bert, "{ops: [swap], n_aug: 1, guard: false}")
    result = run_augmented(spec, _fake_run({"with": 0.7}, calls))
    assert [c.data.train.name for c in calls] == ["train-augmented.jsonl"]
    assert result.metrics["augmentation"]["kept"] == "with"
    assert "guard is false" in (result.run_dir / "report.md").read_text(encoding="utf-8")


def test_other_tasks_train_without_augmentation(tmp_path, tiny_bert, capsys):
    from lmkernel.augment.guard import run_augmented

    spec = _spec(tmp_path, tiny_bert, "{ops: [swap]}")
    object.__setattr__(spec.task, "type", "ner")  # the task name is all the guard reads before handing over
    calls: list = []

    def run_fn(s, **_kw):
        calls.append(s)
        return "plain run"

    assert run_augmented(spec, run_fn) == "plain run"
    assert calls[0].data.augment is None and "classification only" in capsys.readouterr().out
