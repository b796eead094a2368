"""The two small NER runs the PII benchmark's name recall needs (bench/trust_pii.py --names-en/--names-zh).

    nice -n 5 .venv/bin/python bench/trust_pii_ner.py [--out runs] [--steps-en 500] [--steps-zh 400]
        [--only en|zh] [--model-zh runs/minilm-zh/model]

English: MiniLM fine-tuned on CoNLL-2003 (PER entities); Chinese: MiniLM fine-tuned on Resume NER (NAME
entities), each bounded by a number of optimizer steps so that it fits a ~10-minute budget on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
DATA = REPO.parent / "shared" / "data"


def head_sentences(src: Path, dst: Path, n: int) -> Path:
    """The first ``n`` blank-line-separated sentences of a CoNLL file (a smaller validation set)."""
    blocks = [b for b in src.read_text(encoding="utf-8").split("\n\n") if b.strip() and "-DOCSTART-" not in b]
    dst.write_text("\n\n".join(blocks[:n]) + "\n\n", encoding="utf-8")
    return dst


def train(name: str, train_file: Path, validation: Path, steps: int, out: Path, model: str = "minilm") -> Path:
    import lmkernel
    from lmkernel.spec import parse_spec

    spec = parse_spec({"task": {"type": "ner", "tag_column": -1}, "seed": 0,
                       "data": {"train": str(train_file), "validation": str(validation), "max_length": 128},
                       "model": {"name": model}, "tuning": {"method": "full"},
                       "train": {"max_steps": steps, "batch_size": 16, "lr": 1.5e-4},
                       "output": {"dir": str(out / name)}})
    start = time.perf_counter()
    result = lmkernel.run(spec, progress=False)
    print(f"{name}: {time.perf_counter() - start:.0f}s, validation {result.metrics.get('validation')}", flush=True)
    return result.run_dir


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", type=Path, default=REPO / "runs")
    p.add_argument("--steps-en", type=int, default=500)
    p.add_argument("--steps-zh", type=int, default=400)
    p.add_argument("--only", choices=["en", "zh"])
    p.add_argument("--model-zh", default="minilm", help="the Chinese run's encoder: an alias or a model folder, "
                   "e.g. runs/minilm-zh/model (lmkernel pretrain examples/zh/minilm-zh.yaml) that reads Chinese")
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.only != "zh":
        valid = head_sentences(DATA / "conll2003" / "valid.txt", args.out / "conll_valid_1000.txt", 1000)
        train("pii-ner-en", DATA / "conll2003" / "train.txt", valid, args.steps_en, args.out)
    if args.only != "en":
        train("pii-ner-zh", DATA / "resume_ner_zh" / "train.bio", DATA / "resume_ner_zh" / "dev.bio", args.steps_zh,
              args.out, args.model_zh)


if __name__ == "__main__":
    main()
