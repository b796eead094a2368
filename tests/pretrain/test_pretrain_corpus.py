"""Corpus streaming: file discovery, packing boundaries, bad input, deterministic resumable order."""

from __future__ import annotations

from pathlib import Path

import pytest

from lmkernel.errors import LmkError
from lmkernel.pretrain.corpus import BlockStream, CorpusStats, Packing, holdout, iter_texts, pack, resolve_files


def docs(*lengths: int, start: int = 100):
    out, n = [], start
    for k in lengths:
        out.append((list(range(n, n + k)), None))
        n += k
    return out


def test_decoder_packing_keeps_every_token_in_order_with_eos_between_documents():
    d = docs(5, 12, 3, 9)
    blocks = list(pack(d, Packing(8, sep=0)))
    stream = [t for ids, _ in d for t in ids + [0]]  # 33 tokens
    assert [len(b["input_ids"]) for b in blocks] == [8] * 4  # tail of 1 token dropped
    assert [t for b in blocks for t in b["input_ids"]] == stream[:32]


def test_encoder_blocks_are_framed_by_cls_and_sep():
    blocks = list(pack(docs(6, 6, 6), Packing(8, sep=3, prefix=[2], suffix=[3])))
    for b in blocks:
        assert len(b["input_ids"]) == 8 and b["input_ids"][0] == 2 and b["input_ids"][-1] == 3
    body = [t for b in blocks for t in b["input_ids"][1:-1]]
    assert body == [t for ids, _ in docs(6, 6, 6) for t in ids + [3]][:len(body)]


def test_word_starts_travel_with_their_tokens():
    d = [([10, 11, 12], [1, 0, 0]), ([20, 21], [1, 0])]
    a, b = list(pack(d, Packing(5, sep=0, prefix=[2], suffix=[3])))
    assert a["input_ids"] == [2, 10, 11, 12, 3] and a["word_starts"] == [1, 1, 0, 0, 1]
    assert b["input_ids"] == [2, 0, 20, 21, 3] and b["word_starts"] == [1, 1, 1, 0, 1]


def test_block_too_small_is_a_clear_error():
    with pytest.raises(LmkError, match="no room"):
        list(pack(docs(3), Packing(2, sep=3, prefix=[2], suffix=[3])))


def test_resolve_files_accepts_file_glob_and_folder(tmp_path):
    (tmp_path / "a.txt").write_text("x\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.jsonl").write_text('{"text": "y"}\n')
    (tmp_path / "notes.md").write_text("z\n")
    assert resolve_files(tmp_path, "k") == [tmp_path / "a.txt", tmp_path / "sub" / "b.jsonl"]
    assert resolve_files(str(tmp_path / "*.txt"), "k") == [tmp_path / "a.txt"]
    assert resolve_files(tmp_path / "notes.md", "k") == [tmp_path / "notes.md"]
    with pytest.raises(LmkError, match="corpus not found"):
        resolve_files(tmp_path / "missing", "data.train")
    with pytest.raises(LmkError, match="no corpus files"):
        resolve_files(str(tmp_path / "*.csv"), "data.train")


def _read(files: list[Path], on_bad: str = "error", column: str = "text") -> tuple[list[str], CorpusStats]:
    stats = CorpusStats()
    return list(iter_texts(files, column, on_bad, stats)), stats


def test_bad_corpus_files_are_skipped_and_counted_or_stop_with_file_and_line(tmp_path):
    good = tmp_path / "good.txt"
    good.write_text("\ufefffirst line\n\n  second line  \n", encoding="utf-8")
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n")
    binary = tmp_path / "image.txt"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" * 10)
    broken = tmp_path / "latin1.txt"
    broken.write_bytes(b"ok line\n" + "caf\xe9 au lait\n".encode("latin-1") + b"last\n")

    texts, stats = _read([good, empty, binary, broken], on_bad="skip")
    assert texts == ["first line", "second line", "ok line", "last"]
    assert stats.skipped_files == [(str(empty), "empty file"), (str(binary), "binary file")]
    assert stats.bad_count == 1 and stats.bad_lines[0].line == 2 and "UTF-8" in stats.bad_lines[0].reason

    texts, stats = _read([good, empty])  # empty files are skipped even under on_bad_rows: error
    assert len(texts) == 2 and stats.skipped_files == [(str(empty), "empty file")]
    with pytest.raises(LmkError, match="binary") as e:
        _read([binary])
    assert "on_bad_rows: skip" in e.value.render()
    with pytest.raises(LmkError, match="undecodable") as e:
        _read([broken])
    assert f"{broken} line 2" in e.value.render()


def test_jsonl_text_column_and_bad_lines(tmp_path):
    f = tmp_path / "c.jsonl"
    f.write_text('{"body": "one"}\n{"body": 5}\nnot json\n\n{"body": "two"}\n', encoding="utf-8")
    texts, stats = _read([f], "skip", column="body")
    assert texts == ["one", "two"] and stats.bad_count == 2
    with pytest.raises(LmkError) as e:
        _read([f], column="body")
    assert "line 2" in e.value.render() and "body" in e.value.render()


def test_holdout_is_deterministic_and_disjoint():
    texts = [f"t{i}" for i in range(1000)]
    held = list(holdout(texts, 0.1, 7, True))
    kept = list(holdout(texts, 0.1, 7, False))
    assert sorted(held + kept, key=lambda t: int(t[1:])) == texts
    assert 60 < len(held) < 140 and held == list(holdout(texts, 0.1, 7, True))


def _stream(n_docs: int, world: int = 1, rank: int = 0, buffer: int = 16) -> BlockStream:
    def make(stats):
        for i in range(n_docs):
            stats.texts += 1
            yield str(i)

    def encode(chunk):
        return [([int(t)] * 5, None) for t in chunk]

    return BlockStream(make, encode, Packing(4, sep=-1), batch_size=3, seed=1, world_size=world, rank=rank,
                       shuffle_buffer=buffer)


def test_stream_counts_batches_shuffles_per_epoch_and_resumes_exactly():
    s = _stream(100)  # 600 tokens -> 150 blocks -> 50 batches
    assert s.num_batches() == 50 and s.stats.blocks == 150 and s.stats.texts == 100
    epoch0 = list(s.iter_batches(0, 0))
    assert len(epoch0) == 50 and all(len(b) == 3 for b in epoch0)
    flat = sorted(tuple(f["input_ids"]) for b in epoch0 for f in b)
    assert flat == sorted(tuple(b["input_ids"]) for b in pack(((([i] * 5), None) for i in range(100)),
                                                                Packing(4, sep=-1)))
    assert epoch0 == list(s.iter_batches(0, 0))  # same seed and epoch: same order
    assert epoch0 != list(s.iter_batches(1, 0))  # a new epoch reshuffles
    assert list(s.iter_batches(0, 17)) == epoch0[17:]  # resume skips exactly the done batches


def test_stream_shards_batches_across_processes():
    whole = list(_stream(100).iter_batches(0, 0))
    parts = [list(_stream(100, 2, r).iter_batches(0, 0)) for r in (0, 1)]
    assert len(parts[0]) == len(parts[1]) == 25
    assert parts[0] == whole[0::2][:25] and parts[1] == whole[1::2][:25]


def test_corpus_smaller_than_a_batch_is_a_clear_error():
    with pytest.raises(LmkError, match="fewer than one batch"):
        _stream(1).num_batches()
