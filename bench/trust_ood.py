"""Out-of-distribution detection on BANKING77: lmkernel's trust profile against max-softmax probability.

    nice -n 5 .venv/bin/python bench/trust_ood.py [--epochs 2] [--held-out 10] [--seed 0] [--workdir DIR]

Holds 10 of the 77 intents out of training (a seeded choice, printed), fine-tunes the bundled MiniLM
with lmkernel on the 67 others (a seeded 10 % of their training rows is the validation split the trust
profile is calibrated on), then scores the test texts of kept intents (in-distribution) and of
held-out intents (out-of-distribution) two ways, from the same forward pass:
  lmkernel   the detector the run stored in its trust profile (trust.json + trust.safetensors)
  msp        baseline: 1 - max softmax probability (Hendrycks & Gimpel 2017)
Prints AUROC of each (scikit-learn roc_auc_score, ood = positive), their ratio, the share of
in-distribution test texts the stored threshold flags (false-positive rate) and the share of
held-out texts it catches; writes JSON. ``--reuse`` scores an existing run in ``--workdir``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
DATA = REPO.parent / "shared" / "data" / "banking77"


def read_rows(path: Path) -> list[tuple[str, str]]:
    with open(path, encoding="utf-8", newline="") as fh:
        return [(r["text"].strip(), r["category"]) for r in csv.DictReader(fh)]


def write_csv(path: Path, rows: list[tuple[str, str]]) -> None:
    with open(path, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["text", "label"])
        w.writerows(rows)


def prepare(workdir: Path, held_out_n: int, seed: int, val_share: float,
            test_per_intent: int | None) -> tuple[list[str], list[tuple[str, str]]]:
    """Train/validation files of the kept intents; returns the held-out intents and all test rows."""
    intents = json.loads((DATA / "categories.json").read_text(encoding="utf-8"))
    held = sorted(random.Random(seed).sample(intents, held_out_n))
    train = [r for r in read_rows(DATA / "train.csv") if r[1] not in held]
    random.Random(seed + 1).shuffle(train)
    n_val = int(len(train) * val_share)
    workdir.mkdir(parents=True, exist_ok=True)
    write_csv(workdir / "train.csv", train[n_val:])
    write_csv(workdir / "validation.csv", train[:n_val])
    test = read_rows(DATA / "test.csv")
    if test_per_intent:  # a seeded, balanced sample of the test split
        random.Random(seed + 2).shuffle(test)
        taken: dict[str, int] = {}
        kept = []
        for row in test:
            taken[row[1]] = taken.get(row[1], 0) + 1
            if taken[row[1]] <= test_per_intent:
                kept.append(row)
        test = kept
    return held, test


def train(workdir: Path, epochs: int, seed: int, max_steps: int | None, batch_size: int, lr: float,
          model: str) -> dict:
    import lmkernel
    from lmkernel.spec import parse_spec

    spec = parse_spec({
        "seed": seed,
        "data": {"train": str(workdir / "train.csv"), "validation": str(workdir / "validation.csv"),
                 "max_length": 64},
        "model": {"name": model}, "tuning": {"method": "full"},
        "train": {"epochs": epochs, "max_steps": max_steps, "batch_size": batch_size, "lr": lr},
        "output": {"dir": str(workdir / "run")},
    })
    start = time.perf_counter()
    result = lmkernel.run(spec, progress=False)
    return {"validation_accuracy": result.metrics["accuracy"], "train_s": round(time.perf_counter() - start, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--max-steps", type=int, default=None, help="stop training after this many steps")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--model", default="minilm", help="backbone; an earlier run's model/ folder continues it "
                    "(its head's labels are the same sorted intents)")
    ap.add_argument("--val-share", type=float, default=0.1, help="share of the kept intents' training rows")
    ap.add_argument("--test-per-intent", type=int, default=None, help="score a seeded sample of N per intent")
    ap.add_argument("--latency-rounds", type=int, default=60)
    ap.add_argument("--held-out", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/lmk-trust-ood"))
    ap.add_argument("--reuse", action="store_true", help="score the run already in --workdir")
    ap.add_argument("--train-only", action="store_true")
    ap.add_argument("--no-variants", action="store_true", help="skip the other detectors (kNN, unnormalised)")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "trust_ood.json")
    args = ap.parse_args()
    import torch

    held, test = prepare(args.workdir, args.held_out, args.seed, args.val_share, args.test_per_intent)
    print(f"held-out intents (seed {args.seed}): {', '.join(held)}")
    trained = {} if args.reuse else train(args.workdir, args.epochs, args.seed, args.max_steps, args.batch_size,
                                                  args.lr, args.model)
    if args.train_only:
        print(trained)
        return
    result = score(args.workdir, held, test, variants_too=not args.no_variants, rounds=args.latency_rounds)
    result.update(trained, held_out=held, val_share=args.val_share, test_per_intent=args.test_per_intent,
                  model=args.model, epochs=args.epochs, max_steps=args.max_steps, batch_size=args.batch_size,
                  lr=args.lr, seed=args.seed,
                  cpu_capability=torch.backends.cpu.get_cpu_capability())
    print(json.dumps(result, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


def read_split(path: Path) -> list[tuple[str, str]]:
    with open(path, encoding="utf-8", newline="") as fh:
        return [(r["text"], r["label"]) for r in csv.DictReader(fh)]


def ensure_profile(model, workdir: Path):
    """The run's stored profile; a run trained before profiles existed gets one calibrated now."""
    from lmkernel.trust.calibrate import build_profile
    from lmkernel.trust.profile import load_profile, save_profile

    if model.trust is None:
        profile = build_profile(model.model, model.tokenizer, model.labels, read_split(workdir / "train.csv"),
                                read_split(workdir / "validation.csv"), max_length=model.card["max_length"])
        save_profile(model.path, profile)
        model.trust = load_profile(model.path)
    return model.trust


def variants(model, workdir: Path, feats, y_ood) -> dict:
    """Another detector on the same features, for the record of what was measured before choosing."""
    import numpy as np
    from sklearn.metrics import roc_auc_score

    from lmkernel.trust.features import collect
    from lmkernel.trust.ood import _unit

    train = read_split(workdir / "train.csv")
    _, tf = collect(model.model, model.tokenizer, [t for t, _ in train], max_length=model.card["max_length"])
    sims = _unit(feats) @ _unit(tf).T  # kNN cosine distance (Sun et al. 2022), k = 10
    return {"knn10_cosine": round(float(roc_auc_score(y_ood, -np.sort(sims, 1)[:, -10])), 4)}


def latency(model, texts: list[str], rounds: int = 60) -> dict:
    """The server's classify call (ClassifierPredictor: unpadded forward) with and without the profile's
    flags, interleaved call by call so drift in this VM's speed lands on both; median ms per call."""
    import statistics

    from lmkernel.serve.predictor import ClassifierPredictor

    predictor = ClassifierPredictor(model)
    profile = predictor.trust
    out = {}
    for size in (1, 16):
        items = predictor.encode(texts[:size], truncate=True)
        times: dict[str, list[float]] = {"plain": [], "flags": []}
        for r in range(rounds):
            for name in (("plain", "flags") if r % 2 else ("flags", "plain")):
                predictor.trust = profile if name == "flags" else None
                start = time.perf_counter()
                predictor(items)
                times[name].append((time.perf_counter() - start) * 1000)
        med = {k: statistics.median(v[min(5, rounds // 4):]) for k, v in times.items()}  # after warm-up
        out[f"batch_{size}"] = {"ms_plain": round(med["plain"], 3), "ms_with_flags": round(med["flags"], 3),
                                "added_ms": round(med["flags"] - med["plain"], 3)}
    predictor.trust = profile
    return out


def score(workdir: Path, held: list[str], test: list[tuple[str, str]], variants_too: bool = True,
          rounds: int = 60) -> dict:
    import numpy as np
    from sklearn.metrics import roc_auc_score

    from lmkernel.artifact import load
    from lmkernel.trust.features import collect

    model = load(workdir / "run", backend="exact")
    profile = ensure_profile(model, workdir)
    texts = [t for t, _ in test]
    y_ood = np.asarray([y in held for _, y in test])
    start = time.perf_counter()
    probs, feats = collect(model.model, model.tokenizer, texts, max_length=model.card["max_length"])
    ours = profile.ood_scores(probs, feats)
    elapsed = time.perf_counter() - start
    msp = 1 - probs.max(1)
    flagged = ours > profile.ood_threshold
    kept_gold = np.asarray([model.labels.index(y) if not o else -1 for (_, y), o in zip(test, y_ood)])
    result = {"method": profile.ood_method, "auroc_lmkernel": round(float(roc_auc_score(y_ood, ours)), 4),
              "auroc_msp": round(float(roc_auc_score(y_ood, msp)), 4),
              "fpr_in_distribution": round(float(flagged[~y_ood].mean()), 4),
              "caught_held_out": round(float(flagged[y_ood].mean()), 4),
              "low_confidence_in_distribution": round(float((probs.max(1) < profile.low_confidence_threshold)
                                                            [~y_ood].mean()), 4),
              "test_accuracy_kept": round(float((probs.argmax(1) == kept_gold)[~y_ood].mean()), 4),
              "test_texts": {"in_distribution": int((~y_ood).sum()), "held_out": int(y_ood.sum())},
              "score_s_per_1k_texts": round(elapsed / len(texts) * 1000, 2),
              "threshold": profile.ood_threshold, "how": profile.data["ood"]["how"]}
    result["ratio"] = round(result["auroc_lmkernel"] / result["auroc_msp"], 3)
    if variants_too:
        result["other_detectors_auroc"] = variants(model, workdir, feats, y_ood)
    result["serve_call_latency"] = latency(model, [t for t, y in test if y not in held], rounds)
    return result


if __name__ == "__main__":
    main()
