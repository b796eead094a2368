"""Feeds for `lmkernel monitor`: JSONL with times (unix or ISO), plain text, synthetic rates, errors."""

from __future__ import annotations

import pytest

from lmkernel.errors import LmkError
from lmkernel.trust.feed import read_feed, replay
from lmkernel.trust.watch import Watch


def test_jsonl_with_unix_and_iso_times(tmp_path):
    feed = tmp_path / "f.jsonl"
    feed.write_text('{"body": "a", "ts": 10}\n\n{"body": "b", "ts": "1970-01-01T00:00:20Z"}\n', encoding="utf-8")
    rows = list(read_feed(feed, text_field="body", time_field="ts"))
    assert [(t, at) for t, at, _ in rows] == [("a", 10.0), ("b", 20.0)]
    assert rows[1][2].endswith("f.jsonl:3")


def test_plain_text_with_a_rate(tmp_path):
    feed = tmp_path / "f.txt"
    feed.write_text("one\ntwo\nthree\n", encoding="utf-8")
    assert [at for _, at, _ in read_feed(feed, rate=2.0)] == [0.0, 0.5, 1.0]


@pytest.mark.parametrize(("text", "args", "needle"), [
    ('{"text": "a", "ts": "yesterday"}\n', {"time_field": "ts"}, "not a time"),
    ('{"text": "a"}\n', {"time_field": "ts"}, "no time field 'ts'"),
    ('{"text": 3}\n', {}, "no text in 'text'"),
    ("{not json\n", {}, "bad JSON line"),
    ("plain\n", {"time_field": "ts"}, "needs JSON lines"),
])
def test_bad_lines(tmp_path, text, args, needle):
    feed = tmp_path / "f.jsonl"
    feed.write_text(text, encoding="utf-8")
    with pytest.raises(LmkError, match=needle) as err:
        list(read_feed(feed, **args))
    assert err.value.where.endswith("f.jsonl:1")


def test_missing_feed(tmp_path):
    with pytest.raises(LmkError, match="cannot read the feed"):
        list(read_feed(tmp_path / "nope.jsonl"))


def test_replay_batches_and_counts():
    seen = []

    def predict(texts):
        seen.append(len(texts))
        return [{"label": "positive", "score": 0.9} for _ in texts]

    watch = Watch(None, windows=(60.0,))
    n = replay(predict, iter([(f"t{i}", float(i), "x") for i in range(5)]), watch, batch_size=2)
    assert n == 5 and seen == [2, 2, 1]
    assert watch.monitor.stats(60.0).labels == {"positive": 5}
