"""Continual learning on BANKING77: 7 tasks of 11 intents learned in sequence, against joint training.

    .venv/bin/python bench/continual.py --parallel   # 7 tasks x 11 intents, 30 training rows per intent
    .venv/bin/python bench/continual.py --parallel --train-per-intent 0 --test-per-intent 0 --max-length 128
                                                     # the full one: every training and test row
    # what ran on the shared 2-core machine (BENCHMARKS.md), 3 tasks x 4 intents and 7 tasks x 3 intents:
    .venv/bin/python bench/continual.py --parallel --tasks 3 --per-task 4 --train-per-intent 10 \
        --val-per-intent 2 --test-per-intent 10 --epochs 3 --batch-size 8 --lr 2e-4 --replay-per-class 5 \
        --fisher-samples 24 --ewc-lambda 1e5

Each task is 11 intents (categories.json order, in chunks); a stage trains on its task's rows only, and every
stage is a real ``lmkernel.pipeline.run(spec, continue_from=previous_run)``. Methods, in one run, on the same
data, model (minilm, full fine-tuning, frozen word embeddings), epochs and learning rate:

  naive       continual.method: none — plain sequential fine-tuning (the new head rows and nothing else)
  replay      continual.method: replay — a replay buffer of --replay-per-class examples per old class
  replay+ewc  continual.method: replay+ewc — the buffer plus the EWC penalty (λ = --ewc-lambda)
  joint       one ordinary run on all 7 tasks' training rows at once: the upper reference

The accuracy matrix R[i][j] (task j's test rows after stage i, scored over every label learned so far:
class-incremental) comes from the last run's card; ACC, BWT and average forgetting from
``lmkernel.continual.metrics``. Joint training is scored on the same per-task test rows; its ACC is the mean
of the 7 task accuracies. Targets (issue 25): average forgetting ≤ 5 points and final ACC ≥ 90 % of joint.
Validation: --val-per-intent rows per intent taken from train.csv (never trained on). Prints
``torch.backends.cpu.get_cpu_capability()`` and writes bench/results/continual.json.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import shutil
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "banking77"


def _read(path: Path) -> list[tuple[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return [(r["text"], r["category"]) for r in csv.DictReader(fh)]


def _write(path: Path, rows: list[tuple[str, str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["text", "category"])
        w.writerows(rows)
    return path


def _take(rows: list[tuple[str, str]], intents: list[str], n: int, rng: random.Random, skip: int = 0) -> list:
    """``n`` rows per intent (0: all) after the first ``skip`` of each, in a seeded order."""
    out = []
    for intent in intents:
        mine = [r for r in rows if r[1] == intent]
        rng.shuffle(mine)
        out += mine[skip:skip + n] if n else mine[skip:]
    return out


def make_tasks(a, root: Path) -> list[dict]:
    """Per task: train/validation/test files (validation rows come from train.csv, never trained on)."""
    intents = json.loads((DATA / "categories.json").read_text(encoding="utf-8"))
    train, test = _read(DATA / "train.csv"), _read(DATA / "test.csv")
    tasks = []
    for k in range(a.tasks):
        names = intents[k * a.per_task:(k + 1) * a.per_task]
        rng = random.Random(a.seed + k)
        val = _take(train, names, a.val_per_intent, rng)
        rng = random.Random(a.seed + k)  # the same order again: training rows are the ones after validation's
        tr = _take(train, names, a.train_per_intent, rng, skip=a.val_per_intent)
        te = _take(test, names, a.test_per_intent, random.Random(a.seed + 100 + k))
        d = root / f"task{k + 1}"
        tasks.append({"name": f"t{k + 1}", "intents": names, "train": _write(d / "train.csv", tr),
                      "validation": _write(d / "val.csv", val), "test": _write(d / "test.csv", te),
                      "rows": (len(tr), len(val), len(te))})
    return tasks


def _spec(a, files: dict, out: Path, continual: dict | None):
    from lmkernel.spec import parse_spec

    tree = {"seed": a.seed, "data": {"train": str(files["train"]), "validation": str(files["validation"]),
                                     "test": str(files["test"]), "label_column": "category",
                                     "max_length": a.max_length},
            "model": {"name": "minilm"}, "tuning": {"method": "full", "full": {"train_embeddings": False}},
            "train": {"epochs": a.epochs, "batch_size": a.batch_size, "log_every": 50, **({"lr": a.lr} if a.lr else {}),
                      **({"threads": a.threads} if a.threads else {})},
            "output": {"dir": str(out)}}
    if continual is not None:
        tree["continual"] = continual
    return parse_spec(tree, "bench")


def run_sequence(a, tasks: list[dict], method: str, root: Path) -> dict:
    """The stages of one method; the matrix and summary from the last run's card."""
    from lmkernel.pipeline import run

    previous, start = None, time.perf_counter()
    for k, t in enumerate(tasks):
        opts = {"method": method, "replay_per_class": a.replay_per_class, "ewc_lambda": a.ewc_lambda,
                "fisher_samples": a.fisher_samples, "task_name": t["name"]}
        run_dir = run(_spec(a, t, root / f"{method}-{k + 1}", opts), progress=False, continue_from=previous).run_dir
        if previous is not None:
            shutil.rmtree(previous, ignore_errors=True)  # the bench keeps only the latest stage on disk
        previous = run_dir
        print(f"  {method}: stage {k + 1} done ({time.perf_counter() - start:.0f} s)", flush=True)
    card = json.loads((previous / "model" / "lmkernel.json").read_text(encoding="utf-8"))["continual"]
    return {"matrix": card["matrix"], "summary": card["summary"], "seconds": time.perf_counter() - start}


def run_joint(a, tasks: list[dict], root: Path) -> dict:
    """One run on every task's rows; then each task's test rows scored by the joint model."""
    from lmkernel import load
    from lmkernel.pipeline import run

    start = time.perf_counter()
    files = {s: _write(root / "joint" / f"{s}.csv", [r for t in tasks for r in _read(t[s])])
             for s in ("train", "validation", "test")}
    model = load(run(_spec(a, files, root / "joint-run", None), progress=False).run_dir)
    accs = []
    for t in tasks:
        rows = _read(t["test"])
        preds = model.predict([x for x, _ in rows], batch_size=64)
        accs.append(sum(p["label"] == y for p, (_, y) in zip(preds, rows)) / len(rows))
    return {"per_task": accs, "acc": sum(accs) / len(accs), "seconds": time.perf_counter() - start}


def run_parallel(a) -> None:
    """Each method in a subprocess of this script; their JSON merged and printed as one table."""
    import subprocess
    import sys

    outs, procs = {}, []
    argv = [x for x in sys.argv[1:] if x != "--parallel"]
    for method in a.methods.split(","):
        outs[method] = a.out.with_name(f"{a.out.stem}-{method.replace('+', '_')}.part.json")
        cmd = [sys.executable, __file__, *argv, "--methods", method, "--threads", "1", "--out", str(outs[method])]
        procs.append(subprocess.Popen(cmd))
    if any(p.wait() for p in procs):
        raise SystemExit("a method's process failed")
    results: dict = {"args": {k: str(v) for k, v in vars(a).items()}, "methods": {}}
    for path in outs.values():
        part = json.loads(path.read_text(encoding="utf-8"))
        results["methods"].update(part["methods"])
        if "joint" in part:
            results["joint"] = part["joint"]
        path.unlink()
    print_table(results)
    a.out.write_text(json.dumps(results, indent=1), encoding="utf-8")


def print_table(results: dict) -> None:
    joint = results.get("joint", {}).get("acc")
    print("\n| method | ACC | BWT | avg forgetting | ACC / joint | time (s) |\n|---|---|---|---|---|---|")
    for method, r in results["methods"].items():
        s = r["summary"]
        ratio = f"{s['acc'] / joint:.3f}" if joint and s["acc"] is not None else "n/a"
        pct = {k: "n/a" if v is None else f"{100 * v:.1f}" for k, v in s.items()}
        print(f"| {method} | {pct['acc']} | {pct['bwt']} | {pct['forgetting']} | {ratio} | {r['seconds']:.0f} |")
    if joint:
        print(f"| joint | {100 * joint:.1f} | | | 1.000 | {results['joint']['seconds']:.0f} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", type=int, default=7)
    p.add_argument("--per-task", type=int, default=11, help="intents per task")
    p.add_argument("--train-per-intent", type=int, default=30, help="0: every training row")
    p.add_argument("--val-per-intent", type=int, default=5)
    p.add_argument("--test-per-intent", type=int, default=20, help="0: all 40")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=0.0, help="0: the full tuning method's default")
    p.add_argument("--max-length", type=int, default=64)
    p.add_argument("--replay-per-class", type=int, default=10)
    p.add_argument("--ewc-lambda", type=float, default=1e5)
    p.add_argument("--fisher-samples", type=int, default=256)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: all cores)")
    p.add_argument("--methods", default="naive,replay,replay+ewc,joint")
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "continual.json")
    p.add_argument("--parallel", action="store_true", help="each method in its own process (1 thread each), "
                   "merged into one table: the same work, less wall time on a machine shared with others")
    a = p.parse_args()
    if a.parallel:
        return run_parallel(a)

    import torch

    from lmkernel.continual.metrics import markdown

    root = Path(tempfile.mkdtemp(prefix="lmk-continual-"))
    tasks = make_tasks(a, root)
    print(f"cpu capability: {torch.backends.cpu.get_cpu_capability()}; threads: {torch.get_num_threads()}")
    print(f"{a.tasks} tasks x {a.per_task} intents; rows per task (train, validation, test): {tasks[0]['rows']}")
    results: dict = {"args": {k: str(v) for k, v in vars(a).items()}, "methods": {}}
    names = [t["name"] for t in tasks]
    for method in a.methods.split(","):
        if method == "joint":
            results["joint"] = run_joint(a, tasks, root)
            print(f"joint: ACC {100 * results['joint']['acc']:.1f}", flush=True)
            continue
        r = run_sequence(a, tasks, "none" if method == "naive" else method, root)
        results["methods"][method] = r
        print(f"### {method}\n{markdown(r['matrix'], names)}", flush=True)
    print_table(results)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(results, indent=1), encoding="utf-8")
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
