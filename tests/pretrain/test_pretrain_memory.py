"""Bounded memory: streaming a corpus far larger than the shuffle buffer keeps RSS flat."""

from __future__ import annotations

import gc

import psutil

from lmkernel.pretrain.corpus import BlockStream, Packing

WORDS = [f"w{i}" for i in range(5000)]


def test_rss_stays_flat_while_streaming_a_large_generated_corpus():
    docs = 30_000  # x ~100 tokens = 3M tokens a pass: ~110 MB if the ids were held as Python lists

    def make(stats):
        for i in range(docs):
            stats.texts += 1
            yield " ".join(WORDS[(i * 7 + k * 13) % 5000] for k in range(50 + i % 100))

    def encode(chunk):  # cheap stand-in for the tokenizer: the machinery under test is read/pack/shuffle
        return [([1000 + int(w[1:]) * 7 for w in text.split()], None) for text in chunk]

    stream = BlockStream(make, encode, Packing(128, sep=0), batch_size=16, seed=0, shuffle_buffer=256)
    proc = psutil.Process()
    total = stream.num_batches()  # one full counting pass
    assert total * 16 * 128 > 2_500_000
    samples = []
    for i, batch in enumerate(stream.iter_batches(0, 0)):
        assert len(batch) == 16
        if i in (50, total // 2, total - 1):
            gc.collect()
            samples.append(proc.memory_info().rss)
    grown = (max(samples) - samples[0]) / 2**20
    # bound: shuffle buffer (256 blocks x 128 ids) + one chunk of texts, a few MB; holding the pass would be ~100 MB
    assert grown < 20, f"RSS grew {grown:.1f} MB while streaming"
