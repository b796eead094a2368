"""HTTP load test: `lmkernel serve` against a minimal FastAPI + transformers pipeline server.

    .venv/bin/python bench/serve_load.py [--run runs/sst2] [--clients 32] [--seconds 30] [--rounds 3]
        [--max-requests 200000] [--serve-arg=--precision=bf16] [--only lmkernel,baseline] [--json out.json]
    .venv/bin/python bench/serve_load.py --task generate --run CHAT_RUN --clients 8 --max-tokens 64

Both servers serve the same artifact on 127.0.0.1 (or, with --baseline-run, the baseline serves the
fp32 original of an ONNX/int8 artifact that lmkernel serves) (nothing else is ever contacted), one after the
other so they never share the two cores (with --rounds N, each server's time is cut into N windows and
the two take turns, both staying up; this VM's speed drifts by tens of percent within minutes, and
turns keep such a drift from landing on one server only):
  lmkernel   `lmkernel serve RUN` (dynamic batching, length grouping), extra flags via --serve-arg
  baseline   a FastAPI app whose handler calls `pipeline("text-classification")` once per request
N clients each send one SST-2 dev sentence per request, back to back, for T seconds (after a short
warm-up), bounded by --max-requests in total. Prints throughput, p50/p95/p99 latency, errors by
status, the ratios, and for lmkernel the useful FLOP/s against an fp32 matmul peak measured here.
The clients speak minimal HTTP/1.1 over asyncio streams: a full HTTP client library would spend
a sizeable share of the two cores that the servers are being measured on.
Without --run, a model is trained first: examples/sentiment.yaml with train.epochs=1.

--task generate serves a chat artifact instead: N clients each ask /v1/chat/completions for
--max-tokens greedy tokens, back to back. lmkernel runs them with continuous batching; the
baseline is a FastAPI app that calls `model.generate` once per request, one request at a time
(a lock, as a single-model hand-written server or `litgpt serve` does). Prints aggregate
completion tokens/s, the ratio and per-request latency.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]
SST2_DEV = REPO.parent / "shared" / "data" / "sst2" / "dev.tsv"
HOST = "127.0.0.1"  # loopback only, by design
MAX_SECONDS = 600
GRACE_S = 15.0  # how long requests in flight at the end of the window may still finish


# ---------------------------------------------------------------- baseline server (a subprocess)

class BaselineBody(BaseModel):  # module level: FastAPI cannot resolve a local class under postponed annotations
    texts: list[str]


def baseline_app(run: Path):
    """The hand-written server users compare against: one pipeline call per request."""
    from fastapi import FastAPI
    from transformers import pipeline

    sys.path.insert(0, str(REPO / "src"))
    import lmkernel

    model = lmkernel.load(run)  # same weights, adapters merged, as lmkernel serves them
    clf = pipeline("text-classification", model=model.model, tokenizer=model.tokenizer, top_k=None, device="cpu")

    app = FastAPI()

    @app.get("/readyz")
    def ready() -> dict:
        return {"status": "ready"}

    @app.post("/v1/classify")
    def classify(body: BaselineBody) -> dict:  # sync: FastAPI runs it in its thread pool, as most such apps do
        out = clf(body.texts, truncation=True)
        return {"results": [{"label": max(r, key=lambda x: x["score"])["label"],
                             "probabilities": {x["label"]: x["score"] for x in r}} for r in out]}

    return app


class BaselineChat(BaseModel):
    messages: list[dict]
    max_tokens: int = 64


def baseline_generate_app(run: Path):
    """The hand-written generation server: `generate` once per request, one request at a time."""
    import threading

    import torch
    from fastapi import FastAPI

    sys.path.insert(0, str(REPO / "src"))
    import lmkernel

    loaded = lmkernel.load(run)
    model, tok = loaded.model, loaded.tokenizer
    lock = threading.Lock()
    app = FastAPI()

    @app.get("/readyz")
    def ready() -> dict:
        return {"status": "ready"}

    @app.post("/v1/chat/completions")
    def chat(body: BaselineChat) -> dict:
        text = tok.apply_chat_template(body.messages, tokenize=False, add_generation_prompt=True)
        ids = tok(text, return_tensors="pt", add_special_tokens=False)["input_ids"]
        with lock, torch.inference_mode():
            out = model.generate(ids, max_new_tokens=body.max_tokens, do_sample=False,
                                 pad_token_id=tok.pad_token_id or tok.eos_token_id)
        new = out[0, ids.shape[1]:]
        return {"choices": [{"message": {"role": "assistant", "content": tok.decode(new, skip_special_tokens=True)}}],
                "usage": {"prompt_tokens": ids.shape[1], "completion_tokens": len(new)}}

    return app


def run_baseline_server(run: Path, port: int, task: str = "classify") -> None:
    import uvicorn

    app = baseline_generate_app(run) if task == "generate" else baseline_app(run)
    uvicorn.run(app, host=HOST, port=port, log_level="warning", access_log=False)


# ---------------------------------------------------------------- load generation

@dataclass
class Outcome:
    latencies: list[float] = field(default_factory=list)  # seconds, successful requests
    statuses: Counter = field(default_factory=Counter)
    tokens: list[int] = field(default_factory=list)  # usage.input_tokens (generate: completion_tokens) per success
    seconds: float = 0.0


async def _request(reader, writer, path: str, payload: bytes) -> tuple[int, bytes]:
    writer.write(f"POST {path} HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: application/json\r\n"
                 f"Content-Length: {len(payload)}\r\n\r\n".encode() + payload)
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    length = next((int(v) for k, _, v in (h.partition(":") for h in lines[1:]) if k.lower() == "content-length"), None)
    if length is None:
        raise ValueError("response without Content-Length")
    return status, await reader.readexactly(length)


@dataclass(frozen=True)
class Work:
    """What one request is: the path, its body for a text, and which usage field counts its tokens."""

    path: str = "/v1/classify"
    max_tokens: int = 0  # > 0: a chat completion of this many tokens

    def payload(self, text: str) -> bytes:
        if self.max_tokens:
            return json.dumps({"messages": [{"role": "user", "content": f"Say something about: {text}"}],
                               "max_tokens": self.max_tokens, "temperature": 0}).encode()
        return json.dumps({"texts": [text]}).encode()

    def tokens(self, usage: dict) -> int:
        return usage["completion_tokens"] if self.max_tokens else usage["input_tokens"]


async def _client(port: int, texts: list[str], start: int, stop_at: float, budget: list[int], out: Outcome,
                  work: Work) -> None:
    reader = writer = None
    i = start
    while time.perf_counter() < stop_at and budget[0] > 0:
        budget[0] -= 1
        payload = work.payload(texts[i % len(texts)])
        i += 1
        t0 = time.perf_counter()
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection(HOST, port)
            status, body = await _request(reader, writer, work.path, payload)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as e:
            out.statuses[type(e).__name__] += 1
            writer = None
            continue
        out.statuses[status] += 1
        if status == 200:
            out.latencies.append(time.perf_counter() - t0)
            usage = json.loads(body).get("usage")
            if usage:
                out.tokens.append(work.tokens(usage))
    if writer is not None:
        writer.close()


async def load(port: int, texts: list[str], clients: int, seconds: float, max_requests: int,
               work: Work = Work()) -> Outcome:
    """``clients`` closed-loop clients for ``seconds`` (or ``max_requests`` in total), after a warm-up."""
    warm, warm_budget = Outcome(), [clients * (1 if work.max_tokens else 4)]
    await asyncio.gather(*(_client(port, texts, c * 7, time.perf_counter() + 2, warm_budget, warm, work)
                           for c in range(clients)))
    out, budget = Outcome(), [max_requests]
    start = time.perf_counter()
    tasks = [asyncio.ensure_future(_client(port, texts, c * 27, start + seconds, budget, out, work))
             for c in range(clients)]
    # requests still running GRACE_S after the window are abandoned (and not counted): a server that
    # queues one-at-a-time generations could otherwise hold the run for minutes after it
    _, late = await asyncio.wait(tasks, timeout=seconds + GRACE_S)
    for t in late:
        t.cancel()
    out.seconds = min(time.perf_counter() - start, seconds + GRACE_S)
    return out


# ---------------------------------------------------------------- servers, model, report

def process_cpu_seconds(pid: int, thread: int | None = None) -> float:
    """User + system CPU seconds of a process, all its threads, or of one thread of it (Linux /proc;
    0 elsewhere). uvicorn runs the event loop in the main thread, whose id is the process id."""
    stat = Path(f"/proc/{pid}/stat") if thread is None else Path(f"/proc/{pid}/task/{thread}/stat")
    try:
        fields = stat.read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def start_server(cmd: list[str], port: int, timeout: float = 300) -> subprocess.Popen:
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}: {' '.join(cmd)}\n{proc.stderr.read()[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://{HOST}:{port}/readyz", timeout=2) as r:
                if r.status == 200:
                    return proc
        except OSError:
            pass
        time.sleep(0.5)
    proc.kill()
    raise SystemExit(f"server not ready after {timeout:.0f}s: {' '.join(cmd)}")


def batch_totals(port: int) -> tuple[float, float, float] | None:
    """(batches, texts, model seconds) so far, from the server's Prometheus counters; None if absent."""
    try:
        with urllib.request.urlopen(f"http://{HOST}:{port}/metrics", timeout=10) as r:
            text = r.read().decode()
    except OSError:
        return None
    values = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name in ("lmk_batch_size_count", "lmk_batch_size_sum", "lmk_batch_seconds_sum"):
            values[name] = float(value)
    if len(values) < 3:
        return None
    return values["lmk_batch_size_count"], values["lmk_batch_size_sum"], values["lmk_batch_seconds_sum"]


def stop_server(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()


def build_run(workdir: Path) -> Path:
    out = workdir / "sentiment-1ep"
    print(f"no --run given: training examples/sentiment.yaml for 1 epoch into {out}", flush=True)
    subprocess.run([sys.executable, "-m", "lmkernel.cli", "run", "examples/sentiment.yaml", "-q",
                    "--set", "train.epochs=1", "--set", f"output.dir={out}"], cwd=REPO, check=True)
    return out


def read_sentences(path: Path) -> list[str]:
    with open(path, encoding="utf-8") as fh:
        rows = csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)
        next(rows)
        return [r[0].strip() for r in rows if r and r[0].strip()]


PEAK_SECONDS = 3.0


def fp32_peak_gflops(seconds: float = PEAK_SECONDS) -> float:
    """Median GFLOP/s of 1024^3 fp32 matmuls with torch's default threads (the denominator)."""
    import torch

    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    rates = []
    for _ in range(5):
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds / 5:
            torch.mm(a, b)
            n += 1
        rates.append(2 * 1024**3 * n / (time.perf_counter() - t0) / 1e9)
    return statistics.median(rates)


def useful_gflop(run: Path, tokens: list[int]) -> float:
    """The encoder FLOPs a classifier needs for texts of these lengths, without padding.

    Every layer but the last: 2 x its Linear params per token, plus attention's 4 n^2 d. The last
    layer: keys and values at every token (2 x 2 d^2), and only the [CLS] row for the rest (queries,
    output projection, feed-forward) and its attention (4 n d), since the classifier reads nothing
    else; the server computes exactly that (models/unpadded.py). Counting the whole last layer would
    credit the server with work it does not do."""
    sys.path.insert(0, str(REPO / "src"))
    from lmkernel.artifact import find_model_dir, read_card
    from lmkernel.models.resolve import resolve_model_path

    model_dir = find_model_dir(run)
    if not (model_dir / "config.json").is_file():  # a LoRA adapter: the sizes are the base model's
        model_dir = resolve_model_path(read_card(model_dir)["base_model"])
    cfg = json.loads((model_dir / "config.json").read_text())
    d, ff, layers = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"]
    linear = 4 * d * d + 2 * d * ff  # one layer's Linear params (biases aside)
    last = [2 * (2 * d * d) * n + 2 * (linear - 2 * d * d) + 4 * n * d for n in tokens]
    return sum((layers - 1) * (2 * linear * n + 4 * n * n * d) + x for n, x in zip(tokens, last)) / 1e9


def merge(into: Outcome, o: Outcome) -> None:
    """Add one measured window to a server's totals."""
    into.latencies += o.latencies
    into.statuses.update(o.statuses)
    into.tokens += o.tokens
    into.seconds += o.seconds


def summary(name: str, o: Outcome) -> dict:
    lat = sorted(o.latencies)

    def pct(p: float) -> float:
        return lat[min(len(lat) - 1, int(p / 100 * len(lat)))] * 1000 if lat else float("nan")

    return {"server": name, "ok": len(lat), "seconds": round(o.seconds, 2),
            "throughput": len(lat) / o.seconds if o.seconds else 0.0,
            "tokens_per_s": sum(o.tokens) / o.seconds if o.seconds else 0.0,
            "p50_ms": pct(50), "p95_ms": pct(95), "p99_ms": pct(99),
            "errors": {str(k): v for k, v in o.statuses.items() if k != 200}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", type=Path, help="run directory to serve (default: train one quickly)")
    ap.add_argument("--task", choices=("classify", "generate"), default="classify",
                    help="generate: a chat artifact, /v1/chat/completions, against generate() per request")
    ap.add_argument("--max-tokens", type=int, default=64, help="generate: completion tokens per request")
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=30.0, help=f"measured seconds per server (<= {MAX_SECONDS})")
    ap.add_argument("--max-requests", type=int, default=200_000, help="requests per server at most")
    ap.add_argument("--rounds", type=int, default=1, help="split each server's --seconds into this many windows, "
                    "the servers taking turns (both stay up): a ratio robust to this VM's speed drifting mid-run")
    ap.add_argument("--baseline-run", type=Path, help="artifact the baseline serves (default: --run); e.g. the "
                    "fp32 original when --run is its ONNX/int8 copy, which a transformers pipeline cannot run")
    ap.add_argument("--serve-arg", action="append", default=[], help="extra `lmkernel serve` flag (repeatable)")
    ap.add_argument("--only", default="lmkernel,baseline", help="comma-separated: lmkernel, baseline")
    ap.add_argument("--data", type=Path, default=SST2_DEV, help="TSV with a sentence column")
    ap.add_argument("--json", type=Path, help="also write the results here")
    ap.add_argument("--baseline-server", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.baseline_server:
        return run_baseline_server(args.run, args.port, args.task)
    if not (0 < args.seconds <= MAX_SECONDS and args.clients > 0 and args.max_requests > 0 and args.rounds > 0):
        raise SystemExit(f"--seconds must be in (0, {MAX_SECONDS}], --clients, --max-requests and --rounds positive")
    texts = read_sentences(args.data)
    work = Work("/v1/chat/completions", args.max_tokens) if args.task == "generate" else Work()
    if work.max_tokens and not args.run:
        raise SystemExit("--task generate needs --run: a chat artifact")
    with tempfile.TemporaryDirectory() as tmp:
        run = (args.run or build_run(Path(tmp))).resolve()
        baseline_run = (args.baseline_run or run).resolve()
        commands = {
            "lmkernel": lambda p: [sys.executable, "-m", "lmkernel.cli", "serve", str(run), "--host", HOST,
                                   "--port", str(p), *args.serve_arg],
            "baseline": lambda p: [sys.executable, __file__, "--baseline-server", "--run", str(baseline_run),
                                   "--port", str(p), "--task", args.task],
        }
        names = [n.strip() for n in args.only.split(",") if n.strip()]
        outcomes = {n: Outcome() for n in names}
        cpu_share = {n: [0.0, 0.0, 0.0, 0.0] for n in names}  # server, clients, wall, event loop
        peaks: list[float] = []
        batch_use = None
        servers: dict[str, tuple[subprocess.Popen, int]] = {}
        try:
            for name in names:  # all up before the first window; an idle server takes no CPU
                port = free_port()
                servers[name] = (start_server(commands[name](port), port), port)
            for r in range(args.rounds):
                for name in names[r % len(names):] + names[:r % len(names)]:  # rotate who goes first
                    # This VM's fp32 peak drifts by ±20 % within minutes, so it is measured right before
                    # and right after each lmkernel window (no load running), and the highest one is used.
                    bracket = name == "lmkernel" and args.task == "classify"
                    if bracket:
                        peaks.append(fp32_peak_gflops(PEAK_SECONDS))
                    proc, port = servers[name]
                    cpu0, mine0, wall0 = process_cpu_seconds(proc.pid), time.process_time(), time.perf_counter()
                    loop0 = process_cpu_seconds(proc.pid, proc.pid)
                    batches0 = batch_totals(port) if name == "lmkernel" else None
                    o = asyncio.run(load(port, texts, args.clients, args.seconds / args.rounds,
                                         args.max_requests // args.rounds, work))
                    used = (process_cpu_seconds(proc.pid) - cpu0, time.process_time() - mine0,
                            time.perf_counter() - wall0, process_cpu_seconds(proc.pid, proc.pid) - loop0)
                    cpu_share[name] = [a + b for a, b in zip(cpu_share[name], used)]
                    merge(outcomes[name], o)
                    if batches0 is not None and (batches1 := batch_totals(port)) is not None:
                        window = [b - a for a, b in zip(batches0, batches1)] + [used[2]]
                        batch_use = window if batch_use is None else [a + b for a, b in zip(batch_use, window)]
                    if bracket:
                        peaks.append(fp32_peak_gflops(PEAK_SECONDS))
                    if args.rounds > 1:
                        print(f"round {r} {name}: {summary(name, o)['throughput']:.2f} req/s", flush=True)
        finally:
            for proc, _ in servers.values():
                stop_server(proc)
        rows = [summary(name, outcomes[name]) for name in names]
        peaks = [max(peaks[0::2]), max(peaks[1::2])] if peaks else []
        report(rows, outcomes, run, args, peaks, cpu_share)  # inside: a run trained here lives in tmp
        if batch_use and batch_use[0]:
            count, texts_in, busy, wall = batch_use
            print(f"lmkernel batches: {count:.0f}, {texts_in / count:.1f} texts each on average; the model was busy "
                  f"{100 * busy / wall:.0f}% of the {wall:.0f} s, summed over workers (--workers N: up to N x 100%; "
                  f"{1000 * busy / count:.1f} ms per batch)")


def report(rows: list[dict], outcomes: dict[str, Outcome], run: Path, args: argparse.Namespace,
           peaks: list[float], cpu_share: dict[str, tuple[float, float, float, float]]) -> None:
    what = (f"{args.max_tokens}-token greedy chat completions" if args.task == "generate"
            else "one SST-2 dev sentence per request")
    served = f"model {run.name}" + (f", baseline on {args.baseline_run.name}" if args.baseline_run else "")
    print(f"\n{args.clients} clients x {args.seconds:g} s, {what}, {served}")
    print(f"{'server':10} {'ok':>7} {'req/s':>8} {'tok/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}  errors")
    for r in rows:
        print(f"{r['server']:10} {r['ok']:7d} {r['throughput']:8.2f} {r['tokens_per_s']:8.1f} {r['p50_ms']:8.1f} "
              f"{r['p95_ms']:8.1f} {r['p99_ms']:8.1f}  {r['errors'] or '-'}")
    by = {r["server"]: r for r in rows}
    cores = os.cpu_count() or 1
    for name, (server, clients, wall, loop) in cpu_share.items():  # who had the cores (warm-up included)
        by[name].update(server_cpu_s=server, client_cpu_s=clients, load_wall_s=wall, event_loop_cpu_s=loop)
        per_request = 1000 * loop / max(by[name]["ok"], 1)
        print(f"{name} CPU over the {wall:.0f} s of load: server {server:.1f} s ({100 * server / (cores * wall):.0f}% "
              f"of {cores} cores; its event loop {loop:.1f} s, {per_request:.2f} ms per answered request), "
              f"clients {clients:.1f} s ({100 * clients / (cores * wall):.0f}%)")
    if {"lmkernel", "baseline"} <= set(by) and by["baseline"]["throughput"]:
        lk, bl = by["lmkernel"], by["baseline"]
        rate = "tokens_per_s" if args.task == "generate" else "throughput"
        print(f"ratio lmkernel/baseline: {rate} {lk[rate] / bl[rate]:.2f}x, p50 {lk['p50_ms'] / bl['p50_ms']:.2f}x, "
              f"p99 {lk['p99_ms'] / bl['p99_ms']:.2f}x")
    if "lmkernel" in outcomes and outcomes["lmkernel"].seconds and args.task == "classify":
        o = outcomes["lmkernel"]
        peak = max(peaks)  # the higher of the two: the conservative denominator
        rate = useful_gflop(run, o.tokens) / o.seconds
        by["lmkernel"].update(useful_gflops=rate, fp32_peak_gflops=peak, fp32_peaks_before_after=peaks)
        print(f"lmkernel useful {rate:.1f} GFLOP/s = {100 * rate / peak:.0f}% of the fp32 matmul peak "
              f"{peak:.0f} GFLOP/s (the higher of {peaks[0]:.0f} before and {peaks[1]:.0f} after the lmkernel window"
              f"{'s' if args.rounds > 1 else ''})")
    if args.json:
        args.json.write_text(json.dumps({"task": args.task, "clients": args.clients, "seconds": args.seconds,
                                         "serve_args": args.serve_arg, "results": rows}, indent=2))


if __name__ == "__main__":
    main()
