"""The runs under a folder: what each is, how far it got, how it learned.

``lmkernel runs`` and the console read run folders only through here, so a run's status (done, running,
failed, resumable) and its loss history mean the same thing everywhere. A run folder is one holding the
``spec.yaml`` a run writes first; everything else is optional, since a run may be young, dead or old.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .errors import LmkError

PROGRESS_FILE = "progress.jsonl"  # the training loop's event log: one JSON object a line
SKIP = {"model", "tensorboard", "checkpoints", "plots", "node_modules", ".git", "__pycache__"}
MAX_DEPTH = 3  # runs/<name>, runs/<group>/<name>, a study's trials/<n>


@dataclass
class RunRow:
    name: str
    path: str
    task: str = "?"
    model: str = "?"
    method: str = "?"
    metric: str | None = None  # train.metric: the one the run chose its best checkpoint by
    validation: float | None = None
    test: float | None = None
    size_bytes: int = 0  # the saved model folder
    date: str = ""  # when the run last wrote (ISO, local time)
    status: str = "incomplete"  # done | running | failed | resumable | incomplete
    steps: int | None = None
    detail: str = ""  # why failed / how far a live run got
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def read_progress(run_dir: Path) -> list[dict[str, Any]]:
    """The events of ``progress.jsonl`` so far; lines being written (or torn by a kill) are skipped."""
    path = Path(run_dir) / PROGRESS_FILE
    if not path.exists():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def find_runs(root: Path, depth: int = MAX_DEPTH) -> list[Path]:
    """Run folders under ``root`` (``root`` itself when it is one), newest first."""
    root = Path(root)
    if not root.exists():
        raise LmkError(f"no such folder: {root}", where="DIR", fix="give the folder your runs are in (output.dir's "
                       "parent, by default ./runs)")
    if (root / "spec.yaml").is_file():
        return [root]
    found: list[Path] = []

    def walk(folder: Path, level: int) -> None:
        try:
            children = sorted(p for p in folder.iterdir() if p.is_dir() and p.name not in SKIP)
        except OSError:
            return
        for child in children:
            if (child / "spec.yaml").is_file():
                found.append(child)
            elif level < depth:
                walk(child, level + 1)

    walk(root, 1)
    return sorted(found, key=_last_write, reverse=True)


def _last_write(run: Path) -> float:
    times = [p.stat().st_mtime for p in (run / "metrics.json", run / "progress.jsonl", run / "spec.yaml")
             if p.exists()]
    return max(times, default=0.0)


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from ``path``; {} when it is missing, unreadable or not an object (a run may be young)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _spec_tree(run: Path) -> dict[str, Any]:
    import yaml

    try:
        tree = yaml.safe_load((run / "spec.yaml").read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return {}
    return tree if isinstance(tree, dict) else {}


def _folder_bytes(path: Path) -> int:
    total = 0
    for dirpath, _, files in os.walk(path):
        for name in files:
            try:
                total += os.path.getsize(os.path.join(dirpath, name))
            except OSError:
                pass
    return total


def is_locked(run: Path) -> bool:
    """A live process holds the run's lock (``rundir``): it is training now."""
    lock = run / ".lock"
    if not lock.exists():
        return False
    try:
        import fcntl
    except ImportError:  # no flock: cannot tell, so not claimed to be running
        return False
    try:
        fd = os.open(lock, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def status(run: Path, events: list[dict[str, Any]] | None = None) -> tuple[str, str]:
    """(status, detail) of a run folder."""
    events = read_progress(run) if events is None else events
    last = events[-1] if events else {}
    if (run / "metrics.json").is_file() and (run / "model").is_dir():
        return "done", ""
    if is_locked(run):
        total = next((e.get("total_steps") for e in reversed(events) if e.get("total_steps")), None)
        step = last.get("step")
        return "running", f"step {step} of {total}" if step is not None and total else "starting"
    if last.get("event") == "error":
        return "failed", str(last.get("error", ""))[:200]
    if (run / "checkpoints").is_dir():
        return "resumable", "stopped before the end; lmkernel run SPEC --resume continues it"
    return "incomplete", "no model saved" if events else "never trained"


def describe(run: Path) -> RunRow:
    """One row of the runs table."""
    run = Path(run)
    spec, card = _spec_tree(run), read_json(run / "model" / "lmkernel.json")
    metrics = read_json(run / "metrics.json")
    task = card.get("task") or (spec.get("task") or {}).get("type") or "?"
    model = card.get("base_model") or (spec.get("model") or {}).get("name") or "?"
    method = card.get("tuning") or (spec.get("tuning") or {}).get("method") or "?"
    metric = (spec.get("train") or {}).get("metric")
    splits = {k: {m: v for m, v in d.items() if isinstance(v, int | float) and not isinstance(v, bool)}
              for k, d in metrics.items() if k in ("validation", "test", "eval") and isinstance(d, dict)}
    events = read_progress(run)
    state, detail = status(run, events)
    steps = (metrics.get("training") or {}).get("optimizer steps")
    if steps is None and events:
        steps = events[-1].get("step")
    written = _last_write(run)
    return RunRow(
        name=run.name, path=str(run), task=str(task), model=str(model), method=str(method), metric=metric,
        validation=_pick(splits.get("validation"), metric), test=_pick(splits.get("test"), metric),
        size_bytes=_folder_bytes(run / "model") if (run / "model").is_dir() else 0,
        date=_dt.datetime.fromtimestamp(written).isoformat(timespec="minutes") if written else "",
        status=state, steps=steps, detail=detail, metrics=splits)


def _pick(split: dict[str, float] | None, metric: str | None) -> float | None:
    if not split:
        return None
    if metric and metric in split:
        return float(split[metric])
    return float(split["loss"]) if "loss" in split else None


def history(run: Path) -> list[dict[str, Any]]:
    """The run's loss history in the report's shape (``{"step", "train_loss"}`` / ``{"step", "eval"}``): from
    progress.jsonl, or from the TensorBoard events of a run made before it existed."""
    rows: dict[tuple[str, int], dict[str, Any]] = {}  # a resumed run repeats steps: the last record wins
    for e in read_progress(run):
        if e.get("event") == "train" and "train_loss" in e:
            rows[("train", int(e["step"]))] = {"step": int(e["step"]), "train_loss": float(e["train_loss"])}
        elif e.get("event") == "eval" and isinstance(e.get("metrics"), dict):
            rows[("eval", int(e["step"]))] = {"step": int(e["step"]), "eval": e["metrics"]}
    if not rows:
        return _tensorboard_history(run / "tensorboard")
    return sorted(rows.values(), key=lambda h: (h["step"], "eval" in h))


def _tensorboard_history(folder: Path) -> list[dict[str, Any]]:
    if not folder.is_dir():
        return []
    try:
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    except ImportError:
        return []
    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0})
    acc.Reload()
    tags = set(acc.Tags().get("scalars", []))
    out = [{"step": s.step, "train_loss": s.value} for s in acc.Scalars("train/loss")] if "train/loss" in tags else []
    if "eval/loss" in tags:
        out += [{"step": s.step, "eval": {"loss": s.value}} for s in acc.Scalars("eval/loss")]
    return sorted(out, key=lambda h: (h["step"], "eval" in h))


def spec_differences(runs: list[Path]) -> dict[str, list[Any]]:
    """Dotted spec keys whose values differ between the runs (output.dir aside): what was changed."""
    flat = [_flatten(_spec_tree(r)) for r in runs]
    keys = sorted({k for f in flat for k in f} - {"output.dir"})
    return {k: [f.get(k) for f in flat] for k in keys if len({json.dumps(f.get(k), sort_keys=True) for f in flat}) > 1}


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in tree.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def human_size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"
