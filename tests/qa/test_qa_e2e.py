"""The qa task end to end on the tiny BERT: run, Python predict, CLI eval and predict."""

from __future__ import annotations

import json

import lmkernel


def _spec(tmp_path, qa_data, tiny_bert, extra: str = "") -> object:
    spec = tmp_path / "spec.yaml"
    spec.write_text(f"""task: {{type: qa{extra}}}
data: {{train: {qa_data['train']}, validation: {qa_data['dev']}, max_length: 32}}
model: {{name: {tiny_bert}}}
tuning: {{method: full}}
train: {{epochs: 6, batch_size: 8, lr: 5e-3, log_every: 4}}
output: {{dir: {tmp_path / 'run'}}}
""", encoding="utf-8")
    return spec


def test_run_learns_and_predicts(tmp_path, qa_data, tiny_bert):
    result = lmkernel.run(_spec(tmp_path, qa_data, tiny_bert), progress=False)
    metrics = json.loads((result.run_dir / "metrics.json").read_text(encoding="utf-8"))["validation"]
    assert metrics["f1"] > 80 and 0 <= metrics["exact_match"] <= 100
    model = lmkernel.load(result.run_dir)
    assert model.card["task_options"]["no_answer"] == "never"  # auto, resolved from data without unanswerables
    out = model.predict([{"question": "the hotel was", "context": "the film was great and the hotel was awful"}])
    assert set(out[0]) == {"answer", "score", "start", "end"}
    context = "the film was great and the hotel was awful"
    assert out[0]["answer"] == context[out[0]["start"]:out[0]["end"]]
    assert 0 <= out[0]["score"] <= 1
