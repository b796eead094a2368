"""What a continual run keeps in its artifact beside the weights: ``continual.json`` (the replay buffer and
each task's held-out rows) and, in the card, the stage history and the accuracy matrix.

JSON only (no pickles); written atomically into the artifact folder before it is renamed into place.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import LmkError

STATE_FILE = "continual.json"
VERSION = 1


@dataclass
class TaskData:
    """One stage's task: its name, its labels, held-out (text, label) rows for the accuracy matrix and
    validation rows that later stages add to theirs (choosing the best checkpoint for old tasks too)."""

    name: str
    labels: list[str]
    heldout: list[tuple[str, str]] = field(default_factory=list)
    validation: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class State:
    replay: dict[str, list[str]] = field(default_factory=dict)  # label -> stored texts
    tasks: list[TaskData] = field(default_factory=list)


def select(pool: list[str], k: int, seed: int, label: str) -> list[str]:
    """``k`` of the class's texts, a seeded uniform sample (what reservoir sampling keeps), order kept."""
    unique = list(dict.fromkeys(pool))
    if len(unique) <= k:
        return unique
    keep = set(random.Random(f"{seed}:{label}").sample(range(len(unique)), k))
    return [t for i, t in enumerate(unique) if i in keep]


def update_buffer(old: dict[str, list[str]], new: list[tuple[str, str]], k: int, seed: int) -> dict[str, list[str]]:
    """The buffer after a stage: per class, a sample of at most ``k`` of its stored and new texts."""
    pools: dict[str, list[str]] = {lab: list(texts) for lab, texts in old.items()}
    for text, label in new:
        pools.setdefault(label, []).append(text)
    return {lab: select(texts, k, seed, lab) for lab, texts in pools.items()}


def cap_rows(rows: list[tuple[str, str]], k: int, seed: int) -> list[tuple[str, str]]:
    """At most ``k`` held-out rows, a seeded sample in file order."""
    if len(rows) <= k:
        return rows
    keep = set(random.Random(seed).sample(range(len(rows)), k))
    return [r for i, r in enumerate(rows) if i in keep]


def save(directory: Path, state: State) -> None:
    from ..fsutil import atomic_write_json

    atomic_write_json(Path(directory) / STATE_FILE, {
        "version": VERSION, "replay": state.replay,
        "tasks": [{"name": t.name, "labels": t.labels, "heldout": [list(r) for r in t.heldout],
                   "validation": [list(r) for r in t.validation]} for t in state.tasks]})


def _bad(path: Path, what: str) -> LmkError:
    return LmkError(f"{path}: {what}", where=str(path),
                    fix="the artifact is damaged or was edited by hand; re-run the previous stage")


def load(directory: Path) -> State | None:
    """The stored state, None for a run trained without ``continual:``."""
    path = Path(directory) / STATE_FILE
    if not path.is_file():
        return None
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise _bad(path, f"unreadable ({e})") from e
    raw = raw if isinstance(raw, dict) else {}
    replay, tasks = raw.get("replay"), raw.get("tasks")
    if not isinstance(replay, dict) or not all(isinstance(v, list) and all(isinstance(t, str) for t in v)
                                               for v in replay.values()):
        raise _bad(path, "replay must map each label to a list of texts")
    if not isinstance(tasks, list):
        raise _bad(path, "tasks must be a list")
    out = State(replay={str(k): list(v) for k, v in replay.items()})
    for t in tasks:
        try:
            out.tasks.append(TaskData(str(t["name"]), [str(x) for x in t["labels"]],
                                      [(str(a), str(b)) for a, b in t["heldout"]],
                                      [(str(a), str(b)) for a, b in t.get("validation", [])]))
        except (KeyError, TypeError, ValueError) as e:
            raise _bad(path, f"a task entry is malformed ({e})") from e
    return out


def history(card: dict[str, Any]) -> dict[str, Any]:
    """The card's ``continual`` entry (matrix, task names, stages), empty for a run without one."""
    entry = card.get("continual")
    if not isinstance(entry, dict):
        return {"matrix": [], "tasks": [], "stages": []}
    return {"matrix": list(entry.get("matrix") or []), "tasks": list(entry.get("tasks") or []),
            "stages": list(entry.get("stages") or [])}
