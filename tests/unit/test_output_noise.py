"""What a run prints and writes is ours and true: no library noise, the real epoch count, strict JSON, and a
diverged run stops with a clear error.

pyproject's filterwarnings hides FutureWarning from pytest, so the runs here are subprocesses under
``python -W always`` (every warning printed) and the in-process check records warnings itself.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest

SRC = str(Path(__file__).resolve().parents[2] / "src")
NOISE = ("FutureWarning", "DeprecationWarning", "Removed shared tensor", "LOAD REPORT", "Writing model shards",
         "rank_pattern keys", "is deprecated")


def _python(code: str, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", PYTHONPATH=SRC)
    env.pop("LMKERNEL_FAULT", None)
    return subprocess.run([sys.executable, "-W", "always", *args, "-c", code] if code else
                          [sys.executable, "-W", "always", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


def _chat_rows(n: int) -> str:
    pairs = [("the cat sat on the mat", "die Katze sitzt auf der Matte"), ("hello how are you", "ein Hund läuft")]
    return "".join(json.dumps({"prompt": f"translate to German: {pairs[i % 2][0]}", "response": pairs[i % 2][1]})
                   + "\n" for i in range(n))


def test_python_api_runs_are_quiet_and_report_max_steps(tmp_path, spec_file, tiny_llama):
    """A classifier (new head: transformers' load report) and a prefix-tuned, tied-weight causal LM (shared
    tensors in every checkpoint, peft's old cache argument), trained and loaded from Python."""
    (tmp_path / "chat.jsonl").write_text(_chat_rows(16), encoding="utf-8")
    chat = tmp_path / "chat.yaml"
    chat.write_text(f"""task: {{type: chat}}
data: {{train: chat.jsonl, validation: chat.jsonl, max_length: 64}}
model: {{name: {tiny_llama}}}
tuning: {{method: prefix}}
train: {{epochs: 1, batch_size: 4, lr: 5e-3, checkpoint_every: 1, keep_optimizer: true}}
output: {{dir: runs/chat}}
""", encoding="utf-8")
    code = textwrap.dedent(f"""
        import lmkernel
        from lmkernel.pipeline import run
        from lmkernel.spec import load_spec
        cls = run(load_spec({str(spec_file)!r}, ["train.max_steps=3", "output.dir=runs/cls"]), progress=False)
        lmkernel.load(cls.run_dir).predict(["good film"])
        lm = run(load_spec({str(chat)!r}), progress=False)
        lmkernel.load(lm.run_dir).generate(["hello"], max_new_tokens=3)
        print("done")
    """)
    done = _python(code, tmp_path)
    out = done.stdout + done.stderr
    assert done.returncode == 0 and "done" in done.stdout, out[-3000:]
    assert not [n for n in NOISE if n in out], out[-3000:]
    cls_dir = tmp_path / "runs" / "cls"
    report = (cls_dir / "report.md").read_text()
    assert "| epochs | 0.3 (3 steps of train.max_steps=3) |" in report  # 160 rows / 16 per batch: 10 per epoch
    assert json.loads((cls_dir / "metrics.json").read_text())["training"]["epochs trained"] == 0.3
    assert "| epochs | 1 |" in (tmp_path / "runs" / "chat" / "report.md").read_text()
    assert (tmp_path / "runs" / "chat" / "checkpoints" / "latest").exists()


def test_diverged_run_stops_with_a_clear_error(spec_file):
    """lr=1e30 is a finite setting the spec accepts; the loss becomes NaN within a few steps."""
    done = _python("", spec_file.parent, "-m", "lmkernel.cli", "run", str(spec_file), "-q",
                   "--set", "train.lr=1e30", "--set", "output.dir=runs/nan")
    assert done.returncode == 2, done.stderr[-2000:]
    assert "training loss became nan" in done.stderr and "train.lr = 1e+30" in done.stderr
    assert "lower train.lr" in done.stderr and "Traceback" not in done.stderr
    assert not (spec_file.parent / "runs" / "nan" / "metrics.json").exists()


def test_non_finite_loss_stops_in_process(spec_file, monkeypatch):
    """Whatever makes the loss non-finite (here a patched forward), training stops at that step."""
    import torch

    from lmkernel.errors import LmkError
    from lmkernel.pipeline import run
    from lmkernel.spec import load_spec
    from lmkernel.training import objective

    real = objective.task_forward
    calls = {"n": 0}

    def forward(task, model, batch):
        out = real(task, model, batch)
        calls["n"] += 1
        if calls["n"] == 2:
            out.loss = out.loss * torch.tensor(float("inf"))
        return out

    monkeypatch.setattr(objective, "task_forward", forward)
    monkeypatch.chdir(spec_file.parent)
    with pytest.raises(LmkError) as e:
        run(load_spec(spec_file, ["output.dir=runs/inf", "train.precision=fp32"]), progress=False)
    assert "loss became inf at optimizer step 2" in e.value.render()


def test_cache_argument_has_no_deprecation_warning(tiny_llama):
    import torch
    from transformers import AutoModelForCausalLM

    from lmkernel.models.cachearg import cache_of, with_cache

    model = AutoModelForCausalLM.from_pretrained(str(tiny_llama)).eval()
    ids = torch.tensor([[5, 6, 7]])
    with torch.no_grad(), warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        first = model(input_ids=ids, use_cache=True)
        model(input_ids=ids[:, -1:], **with_cache(cache_of(first)), use_cache=True)
    assert not [w for w in seen if issubclass(w.category, FutureWarning)], [str(w.message) for w in seen]
