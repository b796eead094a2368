"""Where a LoRA training step of the translation benchmark spends its time, and what a regional
``torch.compile`` of the decoder layers would change.

The same setup as ``bench/experiments/shared_prefix.py`` (SmolLM2-135M-Instruct, LoRA r 8 with the addmm forward,
the loop's length-grouped batches of 8 Multi30k pairs, the packed shared-prefix forward, fused AdamW).

    flock /tmp/lmk-bench.lock .venv/bin/python bench/experiments/train_step.py --profile   # time by kind of op
    flock /tmp/lmk-bench.lock .venv/bin/python bench/experiments/train_step.py --compile   # eager vs compiled layers

``--profile`` runs ``--steps`` steps under the PyTorch profiler with shapes recorded and splits the
time: GEMMs of the 30 layers, the output layer's GEMMs (vocabulary-wide), the LoRA GEMMs (one side
is the rank), and everything else; with the GEMM rate of each kind.
``--compile`` times the same ``--steps`` batches eagerly, then compiles every decoder layer
(``nn.Module.compile(dynamic=True)``; the layers share one graph), and prints the compile time
(first compiled step minus an eager one) and the per-step medians of compiled and eager rounds that
alternate on the same batches.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

GEMMS = ("aten::mm", "aten::addmm", "aten::addmm_")


def setup(pairs: int, count: int, batch_size: int):
    from shared_prefix import batches

    from lmkernel.models.resolve import load_tokenizer, resolve_model_path
    from lmkernel.tasks import get_task
    from lmkernel.tasks.shared_prefix import forward_packed, shared_prefix_length
    from lmkernel.training.lora import use_addmm_lora
    from lmkernel.tuning import apply_tuning

    path = resolve_model_path("smollm2")
    task = get_task("translation", {"source_lang": "en", "target_lang": "de",
                                    "system_prompt": "Translate English to German.", "prompt_template": "{source}"})
    torch.manual_seed(0)
    model = apply_tuning(task.build_model(path, []), "lora", r=8, alpha=16)
    use_addmm_lora(model)
    work = batches(task, load_tokenizer(path), pairs, count + 1, batch_size)
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4, fused=True)

    def step(batch: dict) -> float:
        loss = forward_packed(model, batch, shared_prefix_length(batch)).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return float(loss.detach())

    step(work[0])  # warm-up
    return model, step, work[1:]


def kind_of(shapes: list, vocab: int, rank: int) -> str:
    dims = [d for s in shapes for d in s]
    return "output layer" if vocab in dims else "LoRA" if rank in dims else "layers"


def profile(step, work: list, vocab: int, rank: int) -> None:
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    with torch_profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        t = time.perf_counter()
        for batch in work:
            step(batch)
        wall = time.perf_counter() - t
    seconds, flops = Counter(), Counter()
    for e in prof.key_averages(group_by_input_shape=True):
        if e.key not in GEMMS:
            continue
        a, b = e.input_shapes[-2:] if e.key == "aten::mm" else e.input_shapes[1:3]
        kind = kind_of([a, b], vocab, rank)
        seconds[kind] += e.self_cpu_time_total / 1e6
        flops[kind] += 2 * a[0] * a[1] * b[1] * e.count
    total = sum(e.self_cpu_time_total for e in prof.key_averages()) / 1e6  # every op's own time
    seconds["everything else"] = total - sum(seconds.values())
    print(f"{len(work)} steps, {wall / len(work):.2f} s/step under the profiler; op time {total:.1f} s:")
    for kind, s in seconds.most_common():
        rate = f", {flops[kind] / s / 1e9:.0f} GFLOP/s" if flops[kind] else ""
        print(f"  {kind:16} {s:6.2f} s  {100 * s / total:4.1f} %{rate}")
    others = [e for e in prof.key_averages() if e.key not in GEMMS and not e.key.startswith(("autograd", "Optimizer"))]
    print("largest other ops: " + ", ".join(f"{e.key} {100 * e.self_cpu_time_total / 1e6 / total:.1f} %"
                                             for e in sorted(others, key=lambda e: -e.self_cpu_time_total)[:8]))


def compare_compile(model, step, work: list, rounds: int) -> None:
    layers = model.get_base_model().model.layers

    def timed() -> list[float]:
        out = []
        for batch in work:
            t = time.perf_counter()
            step(batch)
            out.append(time.perf_counter() - t)
        return out

    eager = [timed()]
    for layer in layers:
        layer.compile(dynamic=True)
    first = timed()
    compile_s = first[0] - eager[0][0]
    compiled = [first[1:]]

    def use(on: bool) -> None:  # nn.Module.compile keeps the compiled call here; None is the eager call
        for layer in layers:
            layer._compiled_call_impl = saved[layer] if on else None

    saved = {layer: layer._compiled_call_impl for layer in layers}
    for r in range(rounds):
        for on in ((True, False) if r % 2 else (False, True)):
            use(on)
            (compiled if on else eager).append(timed())
            print(f"round {r} {'compiled' if on else 'eager'}: {sum(compiled[-1] if on else eager[-1]):.1f} s",
                  flush=True)
    e = statistics.median(sum(t) / len(t) for t in eager)
    c = statistics.median(sum(t) / len(t) for t in compiled[1:])
    pays = f"pays for itself after {compile_s / (e - c):.0f} steps" if c < e else "never pays for itself"
    print(f"compile: {compile_s:.1f} s (first compiled step, less the first eager one); per step, median of "
          f"{rounds} rounds over {len(work)} batches: eager {e:.2f} s, compiled {c:.2f} s ({e / c:.2f}x); the compile "
          f"{pays}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", action="store_true", help="split a step's time by kind of op")
    ap.add_argument("--compile", action="store_true", help="eager against compiled decoder layers")
    ap.add_argument("--steps", type=int, default=6, help="batches per measurement")
    ap.add_argument("--rounds", type=int, default=4, help="--compile: alternating rounds after the compile")
    ap.add_argument("--pairs", type=int, default=1000)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    if not (args.profile or args.compile):
        ap.error("pass --profile, --compile or both")
    torch.set_num_threads(args.threads)
    model, step, work = setup(args.pairs, args.steps, args.batch_size)
    if args.profile:
        profile(step, work, model.config.vocab_size, 8)
    if args.compile:
        compare_compile(model, step, work, args.rounds)


if __name__ == "__main__":
    main()
