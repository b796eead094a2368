"""A server's classification batches: padded length groups against one unpadded sequence.

What the server's batch worker does with 32 requests in flight, without HTTP: random batches of
``--batch`` SST-2 dev sentences (tokenized by the artifact's tokenizer) through the served
classifier, as
  padded length groups    ``serve.batcher.plan_groups`` cuts them, each group padded to its longest
  unpadded, all tokens    one sequence, no padding, attention once per text, every layer at every
                          token (the server's path before its last layer ran at [CLS] only)
  ... packed              the same on a copy of the model whose linear layers are packed for
                          oneDNN (``models.packed``)
  unpadded, packed, [CLS] last layer (now)   ``models.unpadded.classify_unpadded`` on the packed
                          copy: the last layer's queries, attention, projection and feed-forward at
                          each text's [CLS] token only (what ``lmkernel serve`` runs)
All alternate round by round; the logits of the first batch must agree. ``--sdpa`` adds the unpadded
path's first attention (every text gathered into one padded block for a single masked SDPA call).
``--workers N`` adds a variant that splits each batch between N threads with one torch thread each,
running side by side (``lmkernel serve --workers N`` instead gives each worker its own batches;
splitting one batch would keep the latency of a single worker).

    flock /tmp/lmk-bench.lock .venv/bin/python bench/experiments/unpadded.py [--run runs/sentiment]
        [--rounds 6] [--workers 2]
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # rounds.py


def grouped(model, items: list[list[int]]) -> torch.Tensor:
    """The batcher's padded path: longest first, cut by plan_groups, each group padded."""
    from lmkernel.serve.batcher import plan_groups

    order = sorted(range(len(items)), key=lambda i: -len(items[i]))
    out = torch.empty(len(items), model.config.num_labels)
    for group in plan_groups([len(items[i]) for i in order]):
        rows = [order[k] for k in group]
        width = max(len(items[i]) for i in rows)
        ids = torch.tensor([items[i] + [0] * (width - len(items[i])) for i in rows])
        mask = torch.tensor([[1] * len(items[i]) + [0] * (width - len(items[i])) for i in rows])
        out[rows] = model(input_ids=ids, attention_mask=mask).logits
    return out


def one_masked_sdpa(module, query, key, value, attention_mask, dropout: float = 0.0, scaling=None,
                    lmk_segments=(), **_):
    """The unpadded path's first attention (session 8): gather every text into a padded (texts,
    longest) block with row gathers, then one masked SDPA call. Kept here to measure against."""
    import torch.nn.functional as F

    lengths = torch.tensor([end - start for start, end in lmk_segments])
    starts = torch.tensor([start for start, _ in lmk_segments])
    texts, longest = len(lmk_segments), int(lengths.max())
    offsets = torch.arange(longest)
    valid = offsets[None, :] < lengths[:, None]
    index = torch.where(valid, starts[:, None] + offsets[None, :], 0).flatten()

    def blocks(x):  # (1, heads, tokens, d) -> (texts, heads, longest, d)
        tokens = x[0].transpose(0, 1).reshape(x.shape[2], -1)
        return tokens.index_select(0, index).view(texts, longest, x.shape[1], -1).transpose(1, 2)

    out = F.scaled_dot_product_attention(blocks(query), blocks(key), blocks(value),
                                         attn_mask=valid[:, None, None, :], scale=scaling)
    out = out.transpose(1, 2).reshape(texts * longest, query.shape[1], -1)
    return out.index_select(0, valid.flatten().nonzero().squeeze(1))[None], None


def all_tokens(model, items):
    """The unpadded forward with every layer at every token: the model's own BertModel forward on the
    packed sequence (classify_unpadded before it ran the last layer at [CLS] only)."""
    import itertools

    import lmkernel.models.unpadded as unpadded
    from lmkernel.models.attention import attention_function
    from lmkernel.models.unpadded import UNPADDED

    lengths = [len(ids) for ids in items]
    ends = list(itertools.accumulate(lengths))
    starts = [end - n for end, n in zip(ends, lengths)]
    packed = torch.tensor([t for ids in items for t in ids])[None]
    positions = torch.cat([torch.arange(n) for n in lengths])[None]
    with attention_function(model.config, UNPADDED, unpadded._segment_attention):
        hidden = model.bert(input_ids=packed, position_ids=positions, token_type_ids=torch.zeros_like(packed),
                            lmk_segments=list(zip(starts, ends))).last_hidden_state
    pooled = model.bert.pooler(hidden[0, torch.tensor(starts)][:, None])
    return model.classifier(model.dropout(pooled))


def with_attention(fn):
    """classify_unpadded with another attention function in place of the module's."""
    import lmkernel.models.unpadded as unpadded

    def run(model, items):
        kept = unpadded._segment_attention
        unpadded._segment_attention = fn
        try:
            return all_tokens(model, items)
        finally:
            unpadded._segment_attention = kept
    return run


def split_between(workers: int):
    """classify_unpadded with each batch cut into ``workers`` parts, each on its own single-threaded thread."""
    from concurrent.futures import ThreadPoolExecutor

    from lmkernel.models.unpadded import classify_unpadded

    pool = ThreadPoolExecutor(workers)

    def part(model, items):
        torch.set_num_threads(1)  # the thread's own; the main thread resets its count before its turns
        with torch.inference_mode():
            return classify_unpadded(model, items)

    def run(model, items):
        step = -(-len(items) // workers)
        parts = [items[i:i + step] for i in range(0, len(items), step)]
        return torch.cat(list(pool.map(part, [model] * len(parts), parts)))
    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", type=Path, default=REPO / "runs" / "sentiment", help="a classification artifact")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--batches", type=int, default=40, help="batches per round and variant")
    ap.add_argument("--batch", type=int, default=32, help="texts per batch (the load test's 32 clients)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--sdpa", action="store_true", help="also time the first unpadded attention (one masked SDPA)")
    ap.add_argument("--workers", type=int, default=0, help="also time each batch split between this many "
                    "single-threaded threads")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from rounds import alternate
    from serve_load import SST2_DEV, fp32_peak_gflops, read_sentences, useful_gflop

    import lmkernel
    from lmkernel.models.unpadded import classify_unpadded, supports_unpadded

    loaded = lmkernel.load(args.run)
    model = loaded.model.eval()
    if not supports_unpadded(model):
        raise SystemExit(f"{args.run}: {type(model).__name__} has no unpadded path (BERT-family classifiers only)")
    ids = loaded.tokenizer(read_sentences(SST2_DEV))["input_ids"]
    rng = random.Random(0)
    work = [rng.sample(ids, args.batch) for _ in range(args.batches)]
    tokens = sum(len(x) for b in work for x in b) / len(work)
    gflop = useful_gflop(args.run, [len(x) for b in work for x in b]) / len(work)  # per batch, no padding
    from lmkernel.models.packed import pack_linears

    packed = lmkernel.load(args.run).model.eval()
    if not pack_linears(packed):
        raise SystemExit("oneDNN could not pack the linear layers here (see the log)")
    variants = {"padded length groups": grouped, "unpadded, all tokens": all_tokens,
                "unpadded, all tokens, packed": lambda _, items: all_tokens(packed, items),
                "unpadded, packed, [CLS] last layer (now)": lambda _, items: classify_unpadded(packed, items)}
    if args.sdpa:
        variants["unpadded, all tokens, one masked SDPA"] = with_attention(one_masked_sdpa)
    if args.workers:
        variants[f"unpadded, {args.workers} workers x 1 thread"] = split_between(args.workers)
    peaks = [fp32_peak_gflops()]
    with torch.inference_mode():
        a, *others = (fn(model, work[0]) for fn in variants.values())
        print(f"{len(work)} batches of {args.batch}, {tokens:.0f} tokens each on average; first-batch logits "
              f"differ from the padded path's by at most {max((a - b).abs().max().item() for b in others):.2e}",
              flush=True)
        med = alternate({name: lambda batch, fn=fn: fn(model, batch) for name, fn in variants.items()}, work,
                        args.rounds, before=lambda _: torch.set_num_threads(args.threads))
    peaks.append(fp32_peak_gflops())
    base, peak = med["padded length groups"], max(peaks)
    print(f"\nmedian of {args.rounds} rounds, ms per batch of {args.batch}: "
          + ", ".join(f"{n} {med[n] * 1000:.1f} ({args.batch / med[n]:.0f} texts/s, {base / med[n]:.2f}x, "
                      f"useful {gflop / med[n]:.0f} GFLOP/s = {100 * gflop / med[n] / peak:.0f}% of peak)"
                      for n in variants)
          + f"; fp32 matmul peak {peak:.0f} GFLOP/s (the higher of {peaks[0]:.0f} before and {peaks[1]:.0f} after)")


if __name__ == "__main__":
    main()
