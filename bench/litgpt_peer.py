"""LitGPT 0.5.13 on the training work of bench/translation.py, on this machine (its peer figure).

Same work as ``bench/translation.py``: SmolLM2-135M-Instruct, LoRA r 8 (alpha 2r, no LoRA dropout) on every
attention and MLP linear (LitGPT: query, key, value, projection, mlp), the first N Multi30k en->de training pairs,
batch 8, AdamW lr 1e-3 (weight decay 0.01, 6 % linear warmup), max_seq_length 256, fp32 (``32-true``). Prompt: LitGPT's
``smollm2`` (ChatML) style with the system turn "Translate English to German.", the English sentence as the user
turn and the German sentence (+ ``<|im_end|>``) as the answer; loss on the answer only (``mask_prompt``).

Training samples/s = samples / the sum of LitGPT's per-iteration times (``iter time`` of every iteration: data,
forward, backward, optimizer step). That leaves out model loading, LitGPT's 1-batch "Verifying settings"
validation and the sample generation it runs when the epoch ends, which its own "Training Time" line includes
(also returned, as ``litgpt_training_time_s``). Peak memory is the process's VmHWM (peak RSS) read when that line
is printed, i.e. before LitGPT merges the adapter and saves the merged model.

Set up LitGPT in its own venv (never in the repo's), with this repo's torch, offline from the HF hub:

    python3.11 -m venv /tmp/litgpt-venv
    /tmp/litgpt-venv/bin/pip install torch==2.13.0          # CPU wheel
    /tmp/litgpt-venv/bin/pip install litgpt==0.5.13 requests torch==2.13.0 numpy
    # the model: lmkernel's cached fp32 HF checkpoint of SmolLM2-135M-Instruct, converted to a LitGPT checkpoint
    mkdir -p /tmp/litgpt-work/checkpoints/HuggingFaceTB
    cp -r ~/.cache/lmkernel/smollm2-98362432-1795390581 \\
        /tmp/litgpt-work/checkpoints/HuggingFaceTB/SmolLM2-135M-Instruct
    cd /tmp/litgpt-work && HF_HUB_OFFLINE=1 /tmp/litgpt-venv/bin/litgpt convert_to_litgpt \\
        checkpoints/HuggingFaceTB/SmolLM2-135M-Instruct --model_name SmolLM2-135M-Instruct

(``requests`` is needed by jsonargparse for LitGPT's CLI; the checkpoint folder must be named
``SmolLM2-135M-Instruct``: LitGPT keys the tokenizer's BOS handling on that name.) Then:

    flock /tmp/lmk-bench.lock .venv/bin/python bench/litgpt_peer.py [--train-pairs 1000]

Data and LitGPT's outputs go to ``--workdir`` (default /tmp/litgpt-work/run), never into the repo.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "multi30k"
SYSTEM = "Translate English to German."
ITER_RE = re.compile(r"^Epoch \d+ \| iter (\d+) step \d+ \| .*iter time: ([0-9.]+) ms")
TRAIN_TIME_RE = re.compile(r"Training Time\s*:\s*([0-9.]+) s")


def read_pairs(split: str, n: int, data: Path = DATA) -> list[tuple[str, str]]:
    en = (data / f"{split}.en").read_text(encoding="utf-8").splitlines()[:n]
    de = (data / f"{split}.de").read_text(encoding="utf-8").splitlines()[:n]
    return list(zip(en, de))


def write_data(pairs: list[tuple[str, str]], val_pairs: list[tuple[str, str]], out: Path,
               system: str = SYSTEM) -> None:
    """LitGPT's JSON data module reads ``train.json``/``val.json`` from a folder. ``instruction`` becomes the user
    turn; the extra ``sys_prompt`` key reaches ChatML's ``apply`` and replaces SmolLM2's default system prompt."""
    out.mkdir(parents=True, exist_ok=True)
    for name, rows in (("train.json", pairs), ("val.json", val_pairs)):
        items = [{"instruction": en, "sys_prompt": system, "output": de} for en, de in rows]
        (out / name).write_text(json.dumps(items, ensure_ascii=False), encoding="utf-8")


def _vm_hwm_kb(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def run_litgpt(python: Path, checkpoint_dir: Path, pairs: list[tuple[str, str]], workdir: Path, epochs: int,
               batch_size: int, r: int, lr: float, precision: str = "32-true", max_steps: int | None = None,
               system: str = SYSTEM, log: Path | None = None) -> dict:
    """Fine-tune with ``litgpt finetune_lora`` in a subprocess and return its training speed and peak memory.

    ``python`` is the LitGPT venv's interpreter; ``checkpoint_dir`` a converted LitGPT checkpoint
    (``lit_model.pth`` + tokenizer). Returns samples_per_s, train_s (sum of per-iteration times), peak_gb
    (peak RSS up to the end of training), command, plus litgpt_training_time_s, iters, samples and wall_s.
    """
    workdir = Path(workdir)
    data_dir, out_dir = workdir / "data", workdir / "out"
    shutil.rmtree(out_dir, ignore_errors=True)
    write_data(pairs, read_pairs("val", batch_size), data_dir, system)
    steps = math.ceil(len(pairs) / batch_size) * epochs if max_steps is None else max_steps
    cmd = [str(python), "-m", "litgpt", "finetune_lora", str(checkpoint_dir),
           "--out_dir", str(out_dir), "--precision", precision, "--devices", "1",
           "--lora_r", str(r), "--lora_alpha", str(2 * r), "--lora_dropout", "0.0",
           "--lora_query", "true", "--lora_key", "true", "--lora_value", "true",
           "--lora_projection", "true", "--lora_mlp", "true", "--lora_head", "false",
           "--data", "JSON", "--data.json_path", str(data_dir), "--data.prompt_style", "smollm2",
           "--data.mask_prompt", "true",
           "--train.epochs", str(epochs), "--train.micro_batch_size", str(batch_size),
           "--train.global_batch_size", str(batch_size), "--train.max_seq_length", "256",
           "--train.lr_warmup_steps", str(max(1, int(0.06 * steps))), "--train.save_interval", "1000000",
           "--train.log_interval", "1",
           "--eval.interval", "1000000", "--eval.max_new_tokens", "16", "--eval.initial_validation", "false",
           "--eval.final_validation", "false",
           "--optimizer", json.dumps({"class_path": "torch.optim.AdamW",
                                      "init_args": {"lr": lr, "weight_decay": 0.01}})]
    if max_steps is not None:
        cmd += ["--train.max_steps", str(max_steps)]
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    iter_ms: dict[int, float] = {}
    litgpt_train_s = peak_kb = None
    lines: list[str] = []
    t0 = time.perf_counter()
    # cwd=workdir: LitGPT's own `litgpt/types.py` must not be shadowed by anything in the caller's folder
    with (subprocess.Popen(cmd, cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, bufsize=1) as proc,
          open(log or os.devnull, "w", encoding="utf-8") as log_file):
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            log_file.write(line)
            log_file.flush()
            if m := ITER_RE.search(line):
                iter_ms[int(m.group(1))] = float(m.group(2))
                peak_kb = max(peak_kb or 0, _vm_hwm_kb(proc.pid) or 0)
            elif m := TRAIN_TIME_RE.search(line):
                litgpt_train_s = float(m.group(1))
                peak_kb = max(peak_kb or 0, _vm_hwm_kb(proc.pid) or 0)
    wall_s = time.perf_counter() - t0
    if proc.returncode != 0 or not iter_ms:
        tail = "".join(lines[-40:])
        raise RuntimeError(f"litgpt finetune_lora failed (exit {proc.returncode}):\n{tail}")
    train_s = sum(iter_ms.values()) / 1000
    samples = min(len(iter_ms) * batch_size, len(pairs) * epochs)
    return {"samples_per_s": samples / train_s, "train_s": train_s,
            "peak_gb": peak_kb / 1e6 if peak_kb else None, "command": cmd,
            "litgpt_training_time_s": litgpt_train_s, "iters": len(iter_ms), "samples": samples, "wall_s": wall_s}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--litgpt-python", type=Path, default=Path("/tmp/litgpt-venv/bin/python"))
    ap.add_argument("--checkpoint-dir", type=Path,
                    default=Path("/tmp/litgpt-work/checkpoints/HuggingFaceTB/SmolLM2-135M-Instruct"))
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/litgpt-work/run"))
    ap.add_argument("--train-pairs", type=int, default=1000)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--r", type=int, default=8)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--precision", default="32-true", help="32-true; bf16-true is ~100x slower on CPUs without "
                    "AVX512-BF16")
    ap.add_argument("--max-steps", type=int, default=None, help="stop after this many optimizer steps")
    ap.add_argument("--system", default=SYSTEM)
    ap.add_argument("--json", type=Path, help="also write the result here")
    args = ap.parse_args()
    if not args.litgpt_python.exists():
        sys.exit(f"{args.litgpt_python} not found: set up the LitGPT venv as this file's docstring says")
    args.workdir.mkdir(parents=True, exist_ok=True)
    res = run_litgpt(args.litgpt_python, args.checkpoint_dir.resolve(), read_pairs("train", args.train_pairs),
                     args.workdir.resolve(), args.epochs, args.batch_size, args.r, args.lr, args.precision,
                     max_steps=args.max_steps, system=args.system, log=args.workdir / "litgpt.log")
    print(f"LitGPT finetune_lora, {args.train_pairs} pairs x {args.epochs} epoch(s), batch {args.batch_size}, "
          f"r {args.r}, lr {args.lr}, {args.precision}: {res['samples_per_s']:.2f} training samples/s "
          f"({res['samples']} samples in {res['train_s']:.1f} s of iterations; LitGPT's 'Training Time' "
          f"{res['litgpt_training_time_s']} s), peak RSS {res['peak_gb'] or float('nan'):.2f} GB, "
          f"wall {res['wall_s']:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(res, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
