"""``lmkernel audit verify``: walk the chain of one or more audit files and name the first break.

The kind of break is read from the neighbourhood: a line whose own hash does not match its content
was changed (or, when the next line continues from the line before it, inserted); a line that is
intact but out of sequence is reordered when the missing number appears later, deleted when it
never does, inserted when its number was already seen; an intact line whose ``prev`` is not the
previous hash follows a line that was changed and re-hashed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import LmkError
from .audit import GENESIS, line_hash


@dataclass(frozen=True)
class Verdict:
    ok: bool
    count: int  # lines checked (up to the break)
    message: str
    where: str | None = None  # FILE:LINE of the break
    head: str | None = None  # the last hash (ok) to keep elsewhere

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "count": self.count, "message": self.message, "where": self.where, "head": self.head}


def _read(paths: list[Path]) -> list[tuple[str, dict[str, Any] | None]]:
    rows = []
    for path in paths:
        try:
            lines = Path(path).read_bytes().splitlines()
        except OSError as e:
            raise LmkError(f"cannot read the audit log {path}: {e.strerror or e}", where=str(path)) from e
        for n, raw in enumerate(lines, 1):
            try:
                rec = json.loads(raw)
                rec = rec if isinstance(rec, dict) and isinstance(rec.get("seq"), int) else None
            except ValueError:
                rec = None
            rows.append((f"{path}:{n}", rec))
    return rows


def verify(paths: list[Path], head: str | None = None, prev: str | None = None) -> Verdict:
    """Check the chain across ``paths`` (in order: oldest rotated file first). ``head``: a hash kept
    elsewhere that must be the last line's (or appear in the chain: lines appended since are fine).
    ``prev``: the hash the first line continues from (a rotated file checked alone)."""
    rows = _read(paths)
    if not rows:
        return Verdict(True, 0, "OK: empty log", head=prev or GENESIS)
    first = rows[0][1]
    expected_prev = prev or GENESIS
    expected_seq = 1 if prev is None else (first["seq"] if first else 1)
    seen: dict[int, int] = {}
    for i, (_, rec) in enumerate(rows):
        if rec is not None:
            seen.setdefault(rec["seq"], i)
    hashes = []
    for i, (where, rec) in enumerate(rows):
        problem = _check(rows, i, rec, expected_seq, expected_prev, seen)
        if problem:
            return Verdict(False, i, problem, where)
        expected_seq, expected_prev = rec["seq"] + 1, rec["hash"]
        hashes.append(rec["hash"])
    if head is not None and head != expected_prev:
        if head not in hashes:
            return Verdict(False, len(rows), "the head hash is not in the chain: lines were deleted at the end "
                           "or the log was rewritten", str(paths[-1]))
        after = len(hashes) - 1 - hashes.index(head)
        return Verdict(True, len(rows), f"OK: {len(rows)} line(s); {after} appended after the head", head=expected_prev)
    return Verdict(True, len(rows), f"OK: {len(rows)} line(s)", head=expected_prev)


def _check(rows: list, i: int, rec: dict[str, Any] | None, seq: int, prev: str, seen: dict[int, int]) -> str | None:
    if rec is None:
        return "not an audit record (changed, inserted, or torn by a crash if it is the last line)"
    if line_hash(rec) != rec.get("hash"):
        nxt = rows[i + 1][1] if i + 1 < len(rows) else None
        if nxt is not None and nxt.get("seq") == seq and nxt.get("prev") == prev:
            return "inserted: the next line continues the chain from the line before this one"
        return "changed: the line's content does not match its hash"
    got = rec["seq"]
    if got == seq and rec.get("prev") == prev:
        return None
    if got < seq:
        return f"inserted or reordered: seq {got} again where seq {seq} was due"
    if got > seq:
        if seen.get(seq, -1) > i:
            return f"reordered: seq {got} where seq {seq} was due (seq {seq} comes later)"
        missing = f"seq {seq}" if got == seq + 1 else f"seq {seq}..{got - 1}"
        return f"deleted: {missing} missing before this line"
    return "changed: the line before this one was altered and re-hashed (this line's prev does not match it)"
