"""Continual learning end to end on the tiny BERT: stage 1 learns A/B, stage 2 (--continue-from) learns C/D."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from datakit import NEG_EN, NEG_ZH, NOUNS, POS_EN, POS_ZH, write_csv
from typer.testing import CliRunner

from lmkernel.cli import app
from lmkernel.errors import LmkError


def _rows(labels: str, n: int, seed: int) -> list[tuple[str, str]]:
    """A/B: English positive/negative; C/D: Chinese positive/negative (separable for a tiny model)."""
    rng = random.Random(seed)
    make = {"A": lambda: f"the {rng.choice(NOUNS)} was {rng.choice(POS_EN)}",
            "B": lambda: f"the {rng.choice(NOUNS)} was {rng.choice(NEG_EN)}",
            "C": lambda: rng.choice(["房间", "电影", "服务"]) + rng.choice(POS_ZH),
            "D": lambda: rng.choice(["房间", "电影", "服务"]) + rng.choice(NEG_ZH)}
    return [(make[lab](), lab) for i in range(n) for lab in labels[i % len(labels)]]


def _spec(tmp_path: Path, model: Path, labels: str, name: str, extra: str = "") -> Path:
    d = tmp_path / name
    write_csv(d / "train.csv", _rows(labels, 160, 1))
    write_csv(d / "test.csv", _rows(labels, 20, 2))
    spec = tmp_path / f"{name}.yaml"
    spec.write_text(f"""data: {{train: {d}/train.csv, test: {d}/test.csv, split: {{validation: 0.2}}}}
model: {{name: {model}}}
tuning: {{method: full}}
train: {{epochs: 12, batch_size: 16, lr: 3e-3, log_every: 5, threads: 1}}
output: {{dir: {tmp_path}/runs/{name}}}
continual: {{replay_per_class: 40, ewc_lambda: 10.0, fisher_samples: 32, task_name: {name}}}
{extra}""", encoding="utf-8")
    return spec


@pytest.fixture(scope="module")
def stages(tmp_path_factory, tiny_bert):
    """Stage 1 (A, B) through the API, stage 2 (C, D) through the CLI with --continue-from."""
    from lmkernel.pipeline import run
    from lmkernel.spec import load_spec

    tmp = tmp_path_factory.mktemp("continual")
    first = run(load_spec(_spec(tmp, tiny_bert, "AB", "ab")), progress=False).run_dir
    result = CliRunner().invoke(app, ["run", str(_spec(tmp, tiny_bert, "CD", "cd")), "-q", "--continue-from",
                                      str(first)])
    assert result.exit_code == 0, result.output
    return tmp, first, tmp / "runs" / "cd"


def test_second_stage_keeps_old_labels_and_learns_new(stages):
    from lmkernel import load

    tmp, first, second = stages
    assert load(first).labels == ["A", "B"]
    model = load(second)
    assert model.labels == ["A", "B", "C", "D"]  # old indices kept, new labels after them
    assert model.model.config.num_labels == 4
    rows = _rows("ABCD", 40, 7)
    preds = [p["label"] for p in model.predict([t for t, _ in rows])]
    assert set(preds) == {"A", "B", "C", "D"}
    assert sum(p == y for p, (_, y) in zip(preds, rows)) / len(rows) > 0.6


def test_artifact_stores_bounded_buffer_fisher_and_history(stages):
    from safetensors.torch import load_file

    _, first, second = stages
    state = json.loads((second / "model" / "continual.json").read_text(encoding="utf-8"))
    assert set(state["replay"]) == {"A", "B", "C", "D"}
    assert all(0 < len(v) <= 40 for v in state["replay"].values())
    assert [t["name"] for t in state["tasks"]] == ["ab", "cd"] and state["tasks"][1]["labels"] == ["C", "D"]
    tensors = load_file(str(second / "model" / "continual_ewc.safetensors"))
    head = [k for k in tensors if k.startswith("fisher/") and k.endswith("classifier.weight")]
    assert head and tensors[head[0]].shape[0] == 4 and float(tensors[head[0]].sum()) > 0
    card = json.loads((second / "model" / "lmkernel.json").read_text(encoding="utf-8"))["continual"]
    assert len(card["matrix"]) == 2 and len(card["matrix"][1]) == 2 and card["matrix"][0][0] is not None
    stored = json.loads((first / "model" / "continual.json").read_text(encoding="utf-8"))["replay"]
    assert card["stages"][1]["continued_from"] == str(first)
    assert card["stages"][1]["replayed_rows"] == sum(len(v) for v in stored.values()) > 0
    report = (second / "report.md").read_text(encoding="utf-8")
    assert "## Continual learning" in report and "BWT" in report and "forgetting" in report


def test_continue_from_ner_run_is_refused(stages, tiny_bert, tmp_path):
    from lmkernel.pipeline import run
    from lmkernel.spec import load_spec

    tmp, first, _ = stages
    card_path = tmp_path / "ner" / "model" / "lmkernel.json"
    card_path.parent.mkdir(parents=True)
    card = json.loads((first / "model" / "lmkernel.json").read_text(encoding="utf-8"))
    card.update(task="ner", task_options={})
    card_path.write_text(json.dumps(card), encoding="utf-8")
    with pytest.raises(LmkError, match="is a ner run") as e:
        run(load_spec(_spec(tmp_path, tiny_bert, "CD", "cd")), progress=False, continue_from=tmp_path / "ner")
    assert "classification" in e.value.fix


def test_another_base_model_is_refused(stages, tmp_path):
    from lmkernel.pipeline import run
    from lmkernel.spec import load_spec

    _, first, _ = stages
    with pytest.raises(LmkError, match="trained from base model") as e:
        run(load_spec(_spec(tmp_path, "minilm", "CD", "cd")), progress=False, continue_from=first)
    assert "model.name" in e.value.where


def test_another_tokenizer_is_refused(stages, tiny_bert):
    from lmkernel.continual.stage import check_tokenizer
    from lmkernel.models.resolve import load_tokenizer

    _, first, _ = stages
    old = load_tokenizer(first / "model")
    other = load_tokenizer(tiny_bert)
    other.add_tokens(["brandnewtoken"])
    with pytest.raises(LmkError, match="tokenizer"):
        check_tokenizer(old, other, first / "model")


def test_missing_run_dir_is_refused(tmp_path, tiny_bert):
    result = CliRunner().invoke(app, ["run", str(_spec(tmp_path, tiny_bert, "CD", "cd")), "-q", "--continue-from",
                                      str(tmp_path / "no-such-run")])
    assert result.exit_code != 0
    assert "no such run" in result.output
