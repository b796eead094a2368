"""The few-row GEMM switch of ``models/layout.py``, measured: plain ``F.linear`` against ``FewRowLinear``.

The few-row figures in docs/benchmark-history.md (the causal-LM and serving notes) come from here.
Two parts, both on SmolLM2-135M's shapes (hidden 576, MLP 1536, 30 layers, 49,152-token output layer)
with random weights (GEMM speed does not depend on the values, and nothing is loaded or fetched):
  layers   one pass over the 210 layer matrices plus the output layer, per row count
  model    a decode step and a 40-token prefill of a random-init Llama with SmolLM2's config,
           before and after ``use_few_row_linears`` (same weights, so the outputs are compared)
  layout   ``W @ x.T`` over the layer matrices with a row-major ``x`` against a column-major one
           (the transposed view a few-row product returns), and ``F.linear``
Variants alternate round by round; the median of each is printed with the ratio.

    flock /tmp/lmk-bench.lock .venv/bin/python bench/experiments/few_rows.py [--rounds 5] [--threads 2]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from functools import partial
from pathlib import Path

import torch
from torch.nn import functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

HIDDEN, MLP, LAYERS, VOCAB, HEADS, KV_HEADS = 576, 1536, 30, 49152, 9, 3


def layer_shapes() -> list[tuple[int, int]]:
    """(out, in) of every linear of one SmolLM2-135M forward: q, k, v, o, gate, up, down per layer."""
    kv = HIDDEN // HEADS * KV_HEADS
    per_layer = [(HIDDEN, HIDDEN), (kv, HIDDEN), (kv, HIDDEN), (HIDDEN, HIDDEN), (MLP, HIDDEN), (MLP, HIDDEN),
                 (HIDDEN, MLP)]
    return per_layer * LAYERS


def best_of(fn, repeats: int = 3) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def as_few_row(weight: torch.Tensor):
    from lmkernel.models.layout import FewRowLinear

    layer = FewRowLinear(weight.shape[1], weight.shape[0], bias=False)
    layer.weight = torch.nn.Parameter(weight, requires_grad=False)
    return layer


def time_rows(rows: int, weights: list[torch.Tensor], head: torch.Tensor, rounds: int) -> dict[str, float]:
    """Median ms of a pass over the layers / the output layer at ``rows`` rows, plain and few-row."""
    xs = {i: torch.randn(rows, i) for i in {w.shape[1] for w in weights}}
    few_layers = [as_few_row(w) for w in weights]
    few_head = as_few_row(head)
    variants = {
        "plain": lambda: [F.linear(xs[w.shape[1]], w) for w in weights],
        "few": lambda: [m(xs[m.in_features]) for m in few_layers],
        "plain_head": lambda: F.linear(xs[HIDDEN], head),
        "few_head": lambda: few_head(xs[HIDDEN]),
    }
    results: dict[str, list[float]] = {k: [] for k in variants}
    with torch.inference_mode():
        for _ in range(rounds):
            for name, fn in variants.items():
                results[name].append(best_of(fn))
    return {k: statistics.median(v) * 1e3 for k, v in results.items()}


def bench_layers(rounds: int) -> None:
    weights = [torch.randn(o, i) * 0.02 for o, i in layer_shapes()]
    head = torch.randn(VOCAB, HIDDEN) * 0.02
    print("\nlayers: one pass over 210 layer matrices / the output layer (ms, median of rounds)")
    print(f"{'rows':>5} {'plain layers':>13} {'few-row':>9} {'ratio':>6}   "
          f"{'plain head':>11} {'few-row':>9} {'ratio':>6}")
    for rows in (1, 2, 4, 8, 16, 32, 64, 256):
        med = time_rows(rows, weights, head, rounds)
        print(f"{rows:>5} {med['plain']:>13.1f} {med['few']:>9.1f} {med['plain'] / med['few']:>5.2f}x"
              f"   {med['plain_head']:>11.2f} {med['few_head']:>9.2f} {med['plain_head'] / med['few_head']:>5.2f}x")


def bench_model(rounds: int) -> None:
    from transformers import LlamaConfig, LlamaForCausalLM

    from lmkernel.models.layout import use_few_row_linears
    from lmkernel.models.packed import pack_linears

    cfg = LlamaConfig(hidden_size=HIDDEN, intermediate_size=MLP, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
                      num_key_value_heads=KV_HEADS, vocab_size=VOCAB, tie_word_embeddings=True,
                      max_position_embeddings=2048)
    torch.manual_seed(0)
    plain = LlamaForCausalLM(cfg).eval()
    few = copy.deepcopy(plain)
    use_few_row_linears(few)
    packed = copy.deepcopy(plain)
    pack_linears(packed)
    prompt = torch.randint(0, VOCAB, (1, 40))
    batch8 = torch.randint(0, VOCAB, (8, 40))

    def prefill(model):
        return model(prompt, logits_to_keep=1)

    def decode8(model):
        out = model(batch8, use_cache=True, logits_to_keep=1)
        nxt = out.logits[:, -1:].argmax(-1)
        t = time.perf_counter()
        model(nxt, past_key_values=out.past_key_values, use_cache=True)
        return time.perf_counter() - t

    with torch.inference_mode():
        a, b, c = plain(batch8).logits, few(batch8).logits, packed(batch8).logits
        print(f"\nmodel: max |logit difference| plain vs few-row = {(a - b).abs().max().item():.2e}, "
              f"vs packed = {(a - c).abs().max().item():.2e}")
        models = (("plain", plain), ("few", few), ("packed", packed))
        results: dict[str, list[float]] = {f"{k}_{m}": [] for k in ("prefill", "decode") for m, _ in models}
        for _ in range(rounds):
            for name, model in models:
                results[f"prefill_{name}"].append(best_of(partial(prefill, model)))
                results[f"decode_{name}"].append(min(decode8(model) for _ in range(3)))
    med = {k: statistics.median(v) * 1e3 for k, v in results.items()}
    for part, what in (("prefill", "40-token prefill (1 sequence)"), ("decode", "decode step, batch 8")):
        print(f"{what:30} plain {med[part + '_plain']:.1f} ms, few-row {med[part + '_few']:.1f} ms "
              f"({med[part + '_plain'] / med[part + '_few']:.2f}x), oneDNN-packed {med[part + '_packed']:.1f} ms "
              f"({med[part + '_plain'] / med[part + '_packed']:.2f}x)")


def bench_layout(rounds: int) -> None:
    weights = [torch.randn(o, i) * 0.02 for o, i in layer_shapes()]
    print("\nlayout: one pass over 210 layer matrices as W @ x.T (ms, median of rounds)")
    print(f"{'rows':>5} {'x row-major':>12} {'x column-major':>15} {'ratio':>6} {'F.linear':>9}")
    for rows in (7, 8, 16):
        row_major = {i: torch.randn(rows, i) for i in (HIDDEN, MLP)}
        col_major = {i: torch.randn(i, rows).t() for i in (HIDDEN, MLP)}
        variants = {
            "row": partial(lambda xs: [torch.mm(w, xs[w.shape[1]].t()) for w in weights], row_major),
            "col": partial(lambda xs: [torch.mm(w, xs[w.shape[1]].t()) for w in weights], col_major),
            "linear": partial(lambda xs: [F.linear(xs[w.shape[1]], w) for w in weights], row_major),
        }
        results: dict[str, list[float]] = {k: [] for k in variants}
        with torch.inference_mode():
            for _ in range(rounds):
                for name, fn in variants.items():
                    results[name].append(best_of(fn))
        med = {k: statistics.median(v) * 1e3 for k, v in results.items()}
        print(f"{rows:>5} {med['row']:>12.1f} {med['col']:>15.1f} {med['col'] / med['row']:>5.2f}x "
              f"{med['linear']:>9.1f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5, help="alternating rounds per variant (median reported)")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    ap.add_argument("--only", default="layers,model", help="comma-separated parts: layers, model, layout")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads, CPU capability "
          f"{torch.backends.cpu.get_cpu_capability()}")
    parts = set(args.only.split(","))
    if "layers" in parts:
        bench_layers(args.rounds)
    if "model" in parts:
        bench_model(args.rounds)
    if "layout" in parts:
        bench_layout(args.rounds)


if __name__ == "__main__":
    main()
