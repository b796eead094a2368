"""An append-only, hash-chained audit log (JSONL) and its verification.

Each line is a JSON object with ``seq`` (1, 2, ...), ``time``, ``prev`` (the previous line's hash)
and ``hash`` = SHA-256 of the line's canonical JSON without ``hash``: changing, deleting, inserting
or reordering a line breaks the chain at that line. Deleting the *last* lines, or rewriting the
whole file with a fresh chain, is only visible against a head hash kept elsewhere
(``lmkernel audit verify --head``; ``AuditLog.head`` gives it). Rotation (``max_bytes``) renames the
file to ``NAME.1``, ``NAME.2``, ... and the new file's first line carries the previous file's last
hash, so the files verify as one chain in order.

Text fields are redacted before they are written: by default with the PII guard's redaction
(``guard.redact_pii``: e-mail, phone, ID and card numbers, ... become ``[EMAIL]``, ``[PHONE]``, ...).
Durability (``fsync``): ``always`` syncs every line (the caller waits for the disk); ``interval``
(default) syncs from a background thread every ``fsync_interval_s`` when lines were written, and on
close (the caller never waits for the disk), so a power loss can lose the last second of lines, never the
chain's consistency (a torn last line is reported as such); ``never`` leaves it to the OS.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import LmkError

GENESIS = "0" * 64
TEXT_FIELDS = ("text", "texts", "prompt", "output")


def canonical(record: dict[str, Any]) -> bytes:
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def line_hash(record: dict[str, Any]) -> str:
    """The hash a line must carry: SHA-256 over its canonical JSON without ``hash`` (``prev`` included)."""
    return hashlib.sha256(canonical({k: v for k, v in record.items() if k != "hash"})).hexdigest()


class AuditLog:
    """Appends hash-chained records to ``path``; continues the chain of an existing file.

    Raises:
        LmkError: the file cannot be created or appended to, or its last line is not a chain record.
    """

    def __init__(self, path: str | Path, *, redact: Callable[[str], str] | None = None, fsync: str = "interval",
                 fsync_interval_s: float = 1.0, max_bytes: int | None = None) -> None:
        if fsync not in ("always", "interval", "never"):
            raise LmkError(f"audit fsync policy {fsync!r} is not known", fix="use always, interval or never")
        self.path = Path(path)
        if redact is None:
            from .guard import redact_pii as redact
        self.redact = redact
        self.fsync, self.fsync_interval_s, self.max_bytes = fsync, fsync_interval_s, max_bytes
        self._lock = threading.Lock()
        self._dirty = False
        self._closed = threading.Event()
        self.seq, self.head = _tail(self.path)
        self._fh = self._open()
        if fsync == "interval":
            threading.Thread(target=self._syncer, name="lmkernel-audit-fsync", daemon=True).start()

    def _open(self):
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            return open(self.path, "a", encoding="utf-8")  # noqa: SIM115 (held open, closed in close())
        except OSError as e:
            raise LmkError(f"cannot write the audit log {self.path}: {e.strerror or e}", where="--audit-log",
                           fix="pass a path in a writable folder") from e

    def append(self, event: str, data: dict[str, Any], at: float | None = None) -> dict[str, Any]:
        """Redact the text fields, chain and write one line; returns the line as written."""
        body = {k: self._redacted(v) if k in TEXT_FIELDS else v for k, v in data.items()}
        with self._lock:
            record = {"seq": self.seq + 1, "time": round(time.time() if at is None else at, 6), "event": event,
                      **body, "prev": self.head}
            body = canonical(record)
            record["hash"] = hashlib.sha256(body).hexdigest()  # = line_hash(record), without a second encoding
            try:
                self._fh.write(body[:-1].decode("utf-8") + f',"hash":"{record["hash"]}"}}\n')
                self._fh.flush()
                self._dirty = True
                if self.fsync == "always":
                    self._sync()
            except OSError as e:
                raise LmkError(f"cannot append to the audit log {self.path}: {e.strerror or e}",
                               where="--audit-log") from e
            self.seq, self.head = record["seq"], record["hash"]
            if self.max_bytes and self._fh.tell() >= self.max_bytes:
                self._rotate()
        return record

    def _redacted(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, list):
            return [self.redact(v) if isinstance(v, str) else v for v in value]
        return value

    def _sync(self) -> None:
        os.fsync(self._fh.fileno())
        self._dirty = False

    def _syncer(self) -> None:
        while not self._closed.wait(self.fsync_interval_s):
            if self._dirty:
                with self._lock:
                    if not self._fh.closed:
                        self._sync()

    def _rotate(self) -> None:
        if self.fsync != "never":
            self._sync()
        self._fh.close()
        n = 1
        while self.path.with_name(f"{self.path.name}.{n}").exists():
            n += 1
        os.replace(self.path, self.path.with_name(f"{self.path.name}.{n}"))
        self._fh = self._open()  # the chain goes on: the next line's prev is the rotated file's last hash

    def close(self) -> None:
        with self._lock:
            self._closed.set()
            if not self._fh.closed:
                if self.fsync != "never":
                    self._sync()
                self._fh.close()


def _tail(path: Path) -> tuple[int, str]:
    """(seq, hash) of the file's last line, or (0, genesis) for a new file."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 65536))
            lines = fh.read().splitlines()
    except (FileNotFoundError, NotADirectoryError):
        return 0, GENESIS  # a new log (or one that cannot be created: _open says so)
    except OSError as e:
        raise LmkError(f"cannot read the audit log {path}: {e.strerror or e}", where="--audit-log") from e
    if not lines:
        return 0, GENESIS
    try:
        last = json.loads(lines[-1])
        return int(last["seq"]), str(last["hash"])
    except (ValueError, KeyError, TypeError) as e:
        raise LmkError(f"the last line of the audit log {path} is not an audit record", where=str(path),
                       fix="run `lmkernel audit verify` on it, then start a new log file") from e
