"""One suite over every registered task x tuning method x precision, on tiny in-process models.

Each row trains two optimizer steps, evaluates, saves the artifact, loads it back, evaluates the loaded
model on the same data (the loss must match the run's own evaluation), and predicts or generates. bf16
is forced as autocast on the CPU whatever the CPU is, so the path every GPU and every AVX512-BF16 CPU
takes is tested everywhere. A new task or method adds rows here, not a test file.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

import lmkernel
from lmkernel.tasks import task_names
from lmkernel.tuning import methods

TASKS = [t for t in task_names() if t != "pretrain"]  # pretraining trains every weight of a new model (full only)
# option variants that change a method's code path run as rows of their own
VARIANTS = {"lora": ["r: 4", "r: 4, use_dora: true", "r: 4, use_rslora: true"], "adalora": ["init_r: 4, target_r: 2"],
            "prompt": ["num_virtual_tokens: 4"], "prefix": ["num_virtual_tokens: 4"],
            "adapter": ["placement: houlsby", "placement: pfeiffer"]}
PEFT_METHODS = ("lora", "adalora", "ia3", "prompt", "prefix")
ENCODER_TASKS = ("classification", "ner", "qa")
# classification and NER also run on a causal-LM backbone (the tiny Llama): pooled from the last real token,
# a head on every position; extractive QA is an encoder task (its spans come from a bidirectional reading)
BACKBONES = {"classification": ("encoder", "decoder"), "ner": ("encoder", "decoder"), "qa": ("encoder",),
             "embedding": ("encoder",)}  # sentence embeddings mean-pool an encoder's tokens
ENCODER_METHODS = ("fewshot",)  # mean-pooled sentence vectors: encoders only (a decoder is refused)
WHOLE_ENCODER = ("full", "freeze", "fewshot")  # methods whose trainable share is not an adapter's
ROWS = [(task, name, opts, backbone) for task in TASKS for name, m in sorted(methods().items()) if task in m.tasks
        for opts in VARIANTS.get(name, [""])
        for backbone in BACKBONES.get(task, ("decoder",)) if not (name in ENCODER_METHODS and backbone == "decoder")]


def _write_data(root: Path, task: str) -> dict[str, Path]:
    """Small train/dev files in the task's format, using words both tiny models know."""
    root.mkdir(parents=True, exist_ok=True)
    words = [("the film was great", "positive"), ("the hotel was awful", "negative"),
             ("the book was lovely", "positive"), ("the room was bad", "negative")]
    if task == "classification":
        for split, n in (("train", 24), ("dev", 8)):
            with open(root / f"{split}.csv", "w", newline="", encoding="utf-8") as fh:
                w = csv.writer(fh)
                w.writerow(["text", "label"])
                w.writerows(words[i % 4] for i in range(n))
    elif task == "ner":
        for split, n in (("train", 24), ("dev", 8)):
            lines = []
            for i in range(n):
                toks = words[i % 4][0].split()
                tags = ["O", "B-WORK" if toks[1] in ("film", "book") else "B-PLACE", "O", "O"]
                lines += [f"{t} {g}" for t, g in zip(toks, tags)] + [""]
            (root / f"{split}.conll").write_text("\n".join(lines), encoding="utf-8")
    elif task == "qa":  # flat JSONL to train on, SQuAD-layout JSON to validate on
        rows = [{"id": f"q{i}", "question": f"the {text.split()[1]} was", "context": text,
                 "answers": [{"text": text.split()[-1], "answer_start": text.rindex(" ") + 1}]}
                for i, (text, _) in enumerate(words * 6)]
        (root / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        squad = {"data": [{"paragraphs": [{"context": r["context"], "qas": [r]} for r in rows[:8]]}]}
        (root / "dev.json").write_text(json.dumps(squad), encoding="utf-8")
        return {"train": root / "train.jsonl", "dev": root / "dev.json"}
    elif task == "embedding":
        pairs = [("the film was great", "the book was lovely"), ("the hotel was awful", "the room was bad"),
                 ("the film was bad", "the book was awful"), ("the room was great", "the hotel was lovely")]
        for split, n in (("train", 24), ("dev", 8)):
            rows = [{"anchor": pairs[i % 4][0], "positive": pairs[i % 4][1]} for i in range(n)]
            (root / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    else:
        pairs = [("the cat sat on the mat", "die Katze sitzt auf der Matte"), ("hello", "hallo"),
                 ("a dog runs in the park", "ein Hund läuft im Park")]
        for split, n in (("train", 12), ("dev", 4)):
            rows = []
            for i in range(n):
                src, tgt = pairs[i % 3]
                rows.append({"prompt": f"translate to German: {src}", "response": tgt} if task == "chat"
                            else {"source": src, "target": tgt})
            (root / f"{split}.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                                                 encoding="utf-8")
    ext = {"classification": "csv", "ner": "conll"}.get(task, "jsonl")
    return {"train": root / f"train.{ext}", "dev": root / f"dev.{ext}"}


def _spec(tmp_path: Path, task: str, method: str, opts: str, precision: str, model: Path) -> Path:
    files = _write_data(tmp_path / "data", task)
    task_opts = {"translation": ", max_new_tokens: 4, eval_samples: 2",
                 "summarization": ", max_new_tokens: 4, eval_samples: 2"}.get(task, "")
    method_opts = f", {method}: {{{opts}}}" if opts else ""
    spec = tmp_path / "spec.yaml"
    length = 64 if task in ENCODER_TASKS + ("embedding",) else 160
    spec.write_text(f"""task: {{type: {task}{task_opts}}}
data: {{train: {files['train']}, validation: {files['dev']}, max_length: {length}}}
model: {{name: {model}}}
tuning: {{method: {method}{method_opts}}}
train: {{max_steps: 2, batch_size: 8, eval_batch_size: 8, precision: {precision}, log_every: 1}}
output: {{dir: {tmp_path / 'run'}}}
""", encoding="utf-8")
    return spec


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize(("task", "method", "opts", "backbone"), ROWS,
                         ids=[f"{t}-{m}" + (f"[{o}]" if len(VARIANTS.get(m, [])) > 1 else "")
                              + ("-decoder" if b == "decoder" and t in ENCODER_TASKS else "") for t, m, o, b in ROWS])
def test_train_save_load_predict(tmp_path, tiny_bert, tiny_llama, task, method, opts, backbone, precision):
    from lmkernel.pipeline import evaluate_run

    model_dir = tiny_bert if backbone == "encoder" else tiny_llama
    spec = _spec(tmp_path, task, method, opts, precision, model_dir)
    result = lmkernel.run(spec, progress=False)
    run_dir = result.run_dir
    metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    loss = metrics["validation"]["loss"]
    assert loss == loss and loss > 0  # a number, not NaN

    loaded = lmkernel.load(run_dir)
    card = loaded.card
    assert card["tuning"] == method and card["task"] == task
    share = card["trainable_params"] / card["total_params"]
    if method not in WHOLE_ENCODER:
        assert 0 < share < 0.5, f"{method} trains {share:.1%} of the parameters"
        assert card["weights"] == "adapter"
    assert not loaded.model.training

    # the loaded artifact is the trained model: same validation loss (bf16 runs evaluate under autocast)
    again = evaluate_run(run_dir, (tmp_path / "data").glob("dev.*").__next__(), tmp_path / "ev", progress=False)
    assert again["eval"]["loss"] == pytest.approx(loss, rel=1e-4 if precision == "fp32" else 5e-2)

    if method in PEFT_METHODS and precision == "fp32":  # the adapter is plain peft's too
        _same_as_plain_peft(loaded, run_dir / "model", task)

    if task == "classification":
        out = loaded.predict(["the film was great", "the room was bad"])
        assert [set(o["probabilities"]) for o in out] == [{"positive", "negative"}] * 2
        assert all(abs(sum(o["probabilities"].values()) - 1) < 1e-4 for o in out)
        if precision == "fp32":  # the server's predictor (packed layers, unpadded batches) answers the same
            from lmkernel.serve.predictor import ClassifierPredictor

            predictor = ClassifierPredictor(lmkernel.load(run_dir))
            served = predictor(predictor.encode(["the film was great", "the room was bad"], truncate=False))
            for s, o in zip(served, out):
                assert s["probabilities"]["positive"] == pytest.approx(o["probabilities"]["positive"], abs=1e-4)
    elif task == "ner":
        out = loaded.predict(["the film was great"])
        assert len(out) == 1 and isinstance(out[0]["entities"], list)
    elif task == "qa":
        context = "the film was great"
        out = loaded.predict([{"question": "the film was", "context": context}])
        assert len(out) == 1 and out[0]["answer"] == context[out[0]["start"]:out[0]["end"]]
    elif task == "embedding":
        import numpy as np

        vectors = loaded.embed(["the film was great", "the room was bad"])
        assert vectors.dtype == np.float32 and vectors.shape == (2, loaded.model.config.hidden_size)
        assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
        out = loaded.predict(["the film was great"])
        assert out[0]["embedding"] == pytest.approx(vectors[0].tolist(), abs=1e-5)
    else:
        out = loaded.generate(["translate to German: hello"], max_new_tokens=4)
        assert len(out) == 1 and isinstance(out[0]["text"], str) and 1 <= out[0]["tokens"] <= 4


def _same_as_plain_peft(loaded, model_dir: Path, task: str) -> None:
    import torch
    from peft import PeftModel

    base = loaded.task.build_model(Path(loaded.card["base_model"]), loaded.labels)
    plain = PeftModel.from_pretrained(base, str(model_dir)).eval()
    ids = loaded.tokenizer(["the film was great"], return_tensors="pt")
    with torch.no_grad():  # a bare encoder (embedding) has no logits: compare its token vectors
        want, got = plain(**ids), loaded.model(**ids)
        if task == "qa":
            want, got = want.start_logits, got.start_logits
        else:
            want, got = (want.logits, got.logits) if hasattr(want, "logits") else (want[0], got[0])
    assert torch.allclose(got, want, atol=1e-4), f"{task}: lmkernel.load differs from plain peft"
