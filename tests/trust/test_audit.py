"""The audit log: chained, redacted before writing, continued across reopen and rotation; verify names
the first changed, deleted, inserted or reordered line."""

from __future__ import annotations

import json

import pytest

from lmkernel.errors import LmkError
from lmkernel.trust.audit import GENESIS, AuditLog, line_hash
from lmkernel.trust.audit_verify import verify


def _log(path, n=6, **kw):
    log = AuditLog(path, **kw)
    for i in range(n):
        log.append("classify", {"text": f"write to ann{i}@example.com or call +1 415 555 0100", "label": "pos"},
                   at=1000.0 + i)
    log.close()
    return log


def _rewrite(tmp_path, lines):
    out = tmp_path / "edited.jsonl"
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return verify([out])


def test_chain_and_redaction(tmp_path):
    path = tmp_path / "audit.jsonl"
    log = _log(path)
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert [r["seq"] for r in lines] == [1, 2, 3, 4, 5, 6]
    assert lines[0]["prev"] == GENESIS and lines[1]["prev"] == lines[0]["hash"]
    assert "@" not in path.read_text() and "555" not in path.read_text()
    assert lines[0]["text"] == "write to [EMAIL] or call [PHONE]"  # the PII guard's redaction by default
    verdict = verify([path], head=log.head)
    assert verdict.ok and verdict.count == 6 and verdict.head == log.head


def test_custom_redaction_is_used(tmp_path):
    path = tmp_path / "a.jsonl"
    AuditLog(path, redact=lambda t: t.upper()).append("x", {"text": "abc", "label": "abc"})
    rec = json.loads(path.read_text())
    assert rec["text"] == "ABC" and rec["label"] == "abc" and "redaction" not in rec


@pytest.mark.parametrize(("edit", "kind", "line"), [
    (lambda L: L[:2] + [L[2].replace('"pos"', '"neg"')] + L[3:], "changed", 3),
    (lambda L: L[:2] + L[3:], "deleted", 3),
    (lambda L: L[:2] + [L[3], L[2]] + L[4:], "reordered", 3),
    (lambda L: L[:3] + [L[1]] + L[3:], "inserted", 4),
    (lambda L: L[:2] + ['{"seq": 3, "event": "classify", "text": "forged"}'] + L[2:], "inserted", 3),
    (lambda L: L[:2] + [_rehashed(L[2])] + L[3:], "changed", 4),
])
def test_verify_names_the_first_break(tmp_path, edit, kind, line):
    path = tmp_path / "audit.jsonl"
    _log(path)
    verdict = _rewrite(tmp_path, edit(path.read_text().splitlines()))
    assert not verdict.ok
    assert verdict.message.startswith(kind), verdict.message
    assert verdict.where.endswith(f":{line}")


def _rehashed(line: str) -> str:
    rec = json.loads(line)
    rec["label"] = "neg"
    rec["hash"] = line_hash(rec)
    return json.dumps(rec)


def test_truncated_tail_needs_the_head(tmp_path):
    path = tmp_path / "audit.jsonl"
    log = _log(path)
    verdict = _rewrite(tmp_path, path.read_text().splitlines()[:4])
    assert verdict.ok  # the chain alone cannot see lines cut from the end
    cut = tmp_path / "edited.jsonl"
    assert not verify([cut], head=log.head).ok
    assert "head hash" in verify([cut], head=log.head).message


def test_reopen_continues_and_rotation_chains(tmp_path):
    path = tmp_path / "audit.jsonl"
    _log(path, n=3)
    log = AuditLog(path, max_bytes=600)
    for i in range(6):
        log.append("classify", {"text": f"t{i}", "label": "x"})
    log.close()
    rotated = sorted(tmp_path.glob("audit.jsonl.*"), key=lambda p: int(p.suffix[1:]))
    assert rotated, "expected at least one rotated file"
    files = rotated + [path]
    verdict = verify(files, head=log.head)
    assert verdict.ok and verdict.count == 9
    first_of_new = json.loads(path.read_text().splitlines()[0]) if path.read_text() else None
    if first_of_new:
        last_of_old = json.loads(rotated[-1].read_text().splitlines()[-1])
        assert first_of_new["prev"] == last_of_old["hash"]
        assert verify([path], prev=last_of_old["hash"]).ok


def test_unwritable_audit_log(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")  # its "folder" is a file: no user, root included, can create the log there
    with pytest.raises(LmkError, match="cannot write the audit log"):
        AuditLog(blocker / "audit.jsonl")


def test_garbage_last_line_is_an_lmk_error(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text("not json\n")
    with pytest.raises(LmkError, match="not an audit record"):
        AuditLog(path)


@pytest.mark.parametrize("policy", ["always", "interval", "never"])
def test_fsync_policies_write_the_same_chain(tmp_path, policy):
    path = tmp_path / f"{policy}.jsonl"
    log = _log(path, n=3, fsync=policy, fsync_interval_s=0.01)
    assert verify([path], head=log.head).ok and verify([path]).count == 3


def test_unknown_fsync_policy(tmp_path):
    with pytest.raises(LmkError, match="fsync policy"):
        AuditLog(tmp_path / "a.jsonl", fsync="sometimes")
