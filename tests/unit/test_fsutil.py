"""Publishing a folder atomically, also when two processes publish the same one at once."""

from __future__ import annotations

import os

from lmkernel import fsutil
from lmkernel.fsutil import atomic_replace_dir


def _folder(path, text):
    path.mkdir()
    (path / "weights").write_text(text)
    return path


def test_replaces_an_existing_folder_and_leaves_nothing_aside(tmp_path):
    final = _folder(tmp_path / "model", "old")
    atomic_replace_dir(_folder(tmp_path / "model.tmp1", "new"), final)
    assert (final / "weights").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_another_process_publishing_in_between_is_set_aside_again(tmp_path, monkeypatch):
    final = _folder(tmp_path / "model", "first")
    ours = _folder(tmp_path / "model.tmp1", "ours")
    real_replace, calls = os.replace, []

    def racing_replace(src, dst):
        calls.append((src, dst))
        if len(calls) == 2:  # our folder is about to go in: the other process's lands first
            _folder(tmp_path / "model", "theirs")
        return real_replace(src, dst)

    monkeypatch.setattr(fsutil.os, "replace", racing_replace)
    atomic_replace_dir(ours, final)
    assert (final / "weights").read_text() == "ours"  # complete, from the process that came last
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
