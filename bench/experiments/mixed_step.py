"""The engine's one-forward step (``models/decode.py``) against transformers' forwards, model alone.

What the generation server does when a request joins a running batch, on SmolLM2-135M's shapes
(random weights, built in-process: speed does not depend on the values) or on a real artifact
(``--run``), three situations, each timed both ways:
  decode     a decode step of ``--rows`` running sequences
  join       the same step while a new ``--prompt``-token prompt joins: transformers runs the
             prompt's prefill forward and then the decode step; the mixed step runs one forward
  join+prefix  the same, the prompt sharing all but ``--own`` tokens with the previous prompt
             (a chat template's system prompt): the mixed step reuses the shared keys and values
Each round times every variant on a fresh copy of the same batch cache; the median over rounds is
printed with the ratio. Logits of the two ways are compared first.

``--long N``: instead, the engine's pause for a long prompt. ``--rows`` requests decode; an N-token
prompt joins; printed: the longest gap between two tokens of the running requests and the long
request's time to first token, its prompt in one piece against pieces of CHUNK_TOKENS.

    flock /tmp/lmk-bench.lock .venv/bin/python bench/experiments/mixed_step.py [--rounds 7] [--run RUN] [--long 1500]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

HIDDEN, MLP, LAYERS, VOCAB, HEADS, KV_HEADS = 576, 1536, 30, 49152, 9, 3


def smollm2_shaped() -> torch.nn.Module:
    from transformers import LlamaConfig, LlamaForCausalLM

    from lmkernel.models.layout import use_few_row_linears

    cfg = LlamaConfig(hidden_size=HIDDEN, intermediate_size=MLP, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
                      num_key_value_heads=KV_HEADS, vocab_size=VOCAB, tie_word_embeddings=True,
                      max_position_embeddings=2048)
    torch.manual_seed(0)
    model = LlamaForCausalLM(cfg).eval()
    use_few_row_linears(model)  # as lmkernel.load serves a causal LM
    return model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path, help="a causal-LM artifact (default: SmolLM2-135M's shapes, random weights)")
    ap.add_argument("--rows", type=int, default=7, help="running sequences in the batch")
    ap.add_argument("--context", type=int, default=80, help="cached tokens per running sequence")
    ap.add_argument("--prompt", type=int, default=39, help="tokens of the joining prompt")
    ap.add_argument("--own", type=int, default=9, help="join+prefix: the prompt's tokens not shared with the last one")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--long", type=int, default=0, help="time the engine's pause for a prompt this long instead")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from lmkernel.models.decode import mixed_decoder

    model = smollm2_shaped() if args.run is None else __import__("lmkernel").load(args.run).model
    decoder = mixed_decoder(model)
    if decoder is None:
        sys.exit("the mixed step does not apply to this model (see the log line above)")
    vocab, rows = model.config.vocab_size, args.rows
    if args.long:
        return long_prompt(model, decoder, args)
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, vocab, (rows, args.context), generator=g)
    mask = torch.ones(rows, args.context, dtype=torch.long)
    mask[rows // 2, : args.context // 4] = 0  # one shorter, left-padded row
    shared = args.prompt - args.own
    earlier = torch.randint(0, vocab, (args.prompt,), generator=g).tolist()
    fresh = torch.randint(0, vocab, (args.prompt,), generator=g).tolist()
    similar = earlier[:shared] + torch.randint(0, vocab, (args.own,), generator=g).tolist()
    tok = torch.randint(0, vocab, (rows,), generator=g)
    positions = mask.sum(1)
    grown = torch.cat([mask, torch.ones(rows, 1, dtype=mask.dtype)], 1)

    with torch.inference_mode():
        base = model(input_ids=ids, attention_mask=mask, position_ids=(mask.cumsum(1) - 1).clamp(min=0),
                     use_cache=True).past_key_values

        empty = torch.zeros(0, dtype=torch.long)

        def prime(prompt: list[int] | None) -> None:
            """What the mixed step has seen before: ``earlier`` for join+prefix, nothing reusable otherwise."""
            decoder._last = ([], [])
            if prompt is similar:
                decoder.step(empty, empty, None, None, [earlier])

        def plain(prompt: list[int] | None, cache) -> tuple[torch.Tensor, torch.Tensor | None]:
            first = None
            if prompt is not None:
                first = model(input_ids=torch.tensor([prompt]), use_cache=True, logits_to_keep=1).logits[:, -1]
            out = model(input_ids=tok[:, None], attention_mask=grown, position_ids=positions[:, None],
                        past_key_values=cache, use_cache=True)
            return out.logits[:, -1], first

        def mixed(prompt: list[int] | None, cache) -> tuple[torch.Tensor, torch.Tensor | None]:
            logits, first, _ = decoder.step(tok, positions, grown, cache, [] if prompt is None else [prompt])
            return logits, first

        prime(similar)
        a, b = plain(similar, copy.deepcopy(base)), mixed(similar, copy.deepcopy(base))
        print(f"max |logit difference| transformers vs mixed: decode rows {(a[0] - b[0]).abs().max().item():.2e}, "
              f"joining prompt (prefix reused) {(a[1] - b[1]).abs().max().item():.2e}")

        def timed(fn, prompt) -> float:
            cache = copy.deepcopy(base)  # each variant starts from the same batch cache, untimed
            prime(prompt)
            start = time.perf_counter()
            fn(prompt, cache)
            return time.perf_counter() - start

        cases = {"decode": None, "join": fresh, "join+prefix": similar}
        results: dict[str, list[float]] = {f"{c}/{w}": [] for c in cases for w in ("plain", "mixed")}
        for _ in range(args.rounds):
            for case, prompt in cases.items():
                for way, fn in (("plain", plain), ("mixed", mixed)):
                    results[f"{case}/{way}"].append(timed(fn, prompt))
    med = {k: statistics.median(v) * 1e3 for k, v in results.items()}
    what = "random SmolLM2-135M-shaped Llama" if args.run is None else str(args.run)
    print(f"\n{what}: {rows} running rows x {args.context} cached tokens, a {args.prompt}-token prompt joining "
          f"({args.own} of its own tokens in join+prefix); median of {args.rounds} rounds, {args.threads} threads")
    print(f"{'case':<13} {'transformers ms':>16} {'mixed ms':>9} {'ratio':>6}")
    for case in cases:
        p, m = med[f"{case}/plain"], med[f"{case}/mixed"]
        print(f"{case:<13} {p:>16.1f} {m:>9.1f} {p / m:>5.2f}x")


def long_prompt(model, decoder, args) -> None:
    """The running requests' longest gap between tokens while a long prompt joins, and its first token."""
    from lmkernel.serve.generation import engine as engine_module
    from lmkernel.serve.generation.sampling import SamplingParams

    g = torch.Generator().manual_seed(1)
    vocab = model.config.vocab_size
    long_ids = torch.randint(0, vocab, (args.long,), generator=g).tolist()
    short = [torch.randint(0, vocab, (30,), generator=g).tolist() for _ in range(args.rows)]
    results: dict[str, list[tuple[float, float]]] = {"one piece": [], "pieces": []}
    chunk = engine_module.CHUNK_TOKENS
    for _ in range(args.rounds):
        for name, budget in (("one piece", engine_module.PREFILL_TOKENS), ("pieces", chunk)):
            engine_module.CHUNK_TOKENS = budget
            engine = engine_module.Engine(model, decode=lambda ids: "x" * len(ids), eos_ids=[], max_batch=args.rows + 1,
                                          max_queue=args.rows + 1, decoder=decoder)
            stamps: list[float] = []
            params = SamplingParams(max_new_tokens=10_000, temperature=0.0, ignore_eos=True)
            running = [engine.submit(p, params, lambda e, s=stamps: s.append(time.perf_counter())) for p in short]
            for _ in range(3):
                engine.iterate()
            first: list[float] = []
            joined = time.perf_counter()
            engine.submit(long_ids, SamplingParams(max_new_tokens=1, temperature=0.0),
                          lambda e, f=first: f.append(time.perf_counter()) if not f else None)
            del stamps[:-1]  # from the running requests' last token before the long prompt joins
            while not first:
                engine.iterate()
            for _ in range(2):
                engine.iterate()
            for r in running:
                engine.cancel(r)
            engine.iterate()
            per_token = [b - a for a, b in zip(stamps, stamps[1:])]  # consecutive events (rows x steps)
            results[name].append((max(per_token), first[0] - joined))
    engine_module.CHUNK_TOKENS = chunk
    print(f"\n{args.rows} requests decoding, a {args.long}-token prompt joins (median of {args.rounds} rounds)")
    print(f"{'prompt prefilled':<22} {'longest gap between tokens':>27} {'its first token after':>22}")
    for name, label in (("one piece", "in one piece"), ("pieces", f"in pieces of {chunk}")):
        gap = statistics.median(x for x, _ in results[name])
        ttft = statistics.median(y for _, y in results[name])
        print(f"{label:<22} {gap:>25.2f} s {ttft:>20.2f} s")


if __name__ == "__main__":
    main()
