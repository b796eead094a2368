"""The server's event-loop CPU per /v1/classify request, with the model replaced by an instant one.

On the 2-core CPU the event loop (HTTP parsing, checks, tokenizing, JSON) runs on the same cores
as the model, so its CPU per request bounds how much of the machine the model gets. This measures
it alone: `lmkernel serve`'s app (the run's real tokenizer and limits) with a predictor that answers
every batch after 2 ms, loaded by the same closed-loop clients as bench/serve_load.py, in a
subprocess so the clients do not count. Variants, alternating round by round, each in a fresh
process:
  lean      the app as it is (the inference routes' own handler, serve/routes/lean.py; tokenizing
            with the Rust core directly, serve/predictor.core_encoder)
  wrapper   the same, tokenizing through the transformers tokenizer wrapper
  fastapi   the same endpoints under FastAPI's own route handler (dependency solving, response
            validation and encoding), tokenizing with the core

    flock /tmp/lmk-bench.lock .venv/bin/python bench/experiments/event_loop.py [--run runs/sentiment]
        [--rounds 3] [--seconds 10]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "bench"))  # serve_load.py
VARIANTS = ("lean", "wrapper", "fastapi")


def instant_predictor(run: Path, core: bool = True):
    """The run's real request path (tokenizer, limits, labels) in front of a model that takes 2 ms."""
    import lmkernel
    from lmkernel.serve.predictor import ClassifierPredictor

    real = ClassifierPredictor(lmkernel.load(run), prepack=False)
    if not core:
        real._ids = real._cut_ids = None  # the transformers wrapper, as before core_encoder

    class Instant:
        task = "classification"
        name, labels, threads, unpadded = real.name, real.labels, 1, True
        info, encode = real.info, real.encode

        def setup_thread(self) -> None: ...

        def warm_up(self) -> None: ...

        def __call__(self, items):
            time.sleep(0.002)
            answer = {"label": self.labels[0], "score": 1.0, "probabilities": {lab: 0.5 for lab in self.labels}}
            return [answer] * len(items)

    return Instant()


def child(variant: str, run: Path, seconds: float, clients: int) -> None:
    """Serve in this process, load it from a subprocess, print the event loop's ms per request (JSON)."""
    if variant == "fastapi":  # before the routes are built: their handler comes from this method
        from fastapi.routing import APIRoute

        from lmkernel.serve.routes.lean import LeanRoute
        LeanRoute.get_route_handler = APIRoute.get_route_handler  # type: ignore[method-assign]
    import uvicorn
    from serve_load import free_port, process_cpu_seconds

    from lmkernel.serve.app import create_app
    from lmkernel.serve.settings import ServeSettings

    app = create_app(ServeSettings(), task="classification", load=lambda: instant_predictor(run, variant != "wrapper"))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    result: dict = {}

    def drive() -> None:
        import urllib.error
        import urllib.request

        for _ in range(600):  # the app loads the tokenizer in the background: wait for /readyz
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5):
                    break
            except (OSError, urllib.error.URLError):
                time.sleep(0.1)
        code = ("import asyncio, sys; sys.path.insert(0, sys.argv[1]); "
                "from serve_load import load, read_sentences, SST2_DEV; "
                "o = asyncio.run(load(int(sys.argv[2]), read_sentences(SST2_DEV), int(sys.argv[3]), "
                "float(sys.argv[4]), 10**6)); print(dict(o.statuses)); "
                "print(len(o.latencies), sum(o.statuses.values()) - len(o.latencies))")
        tid = threading.main_thread().native_id
        before = process_cpu_seconds(os.getpid(), tid)
        out = subprocess.run([sys.executable, "-c", code, str(REPO / "bench"), str(port), str(clients), str(seconds)],
                             capture_output=True, text=True)
        cpu = process_cpu_seconds(os.getpid(), tid) - before
        try:
            ok, failed = map(int, out.stdout.split()[-2:])
        except ValueError:
            result["error"] = out.stderr[-2000:]
        else:  # the warm-up requests count too: 4 per client before the window
            result.update(ms=1000 * cpu / (ok + 4 * clients), ok=ok, failed=failed,
                          statuses=out.stdout.splitlines()[-2])
        server.should_exit = True

    threading.Thread(target=drive, daemon=True).start()
    server.run()
    print(json.dumps(result))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", type=Path, default=REPO / "runs" / "sentiment", help="a classification artifact")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=10.0, help="measured seconds per variant and round")
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.run, args.seconds, args.clients)
        return
    times: dict[str, list[float]] = {v: [] for v in VARIANTS}
    for r in range(args.rounds):
        for variant in VARIANTS[r % 3:] + VARIANTS[:r % 3]:
            out = subprocess.run([sys.executable, __file__, "--child", variant, "--run", str(args.run),
                                  "--seconds", str(args.seconds), "--clients", str(args.clients)],
                                 capture_output=True, text=True)
            lines = out.stdout.strip().splitlines()
            res = json.loads(lines[-1]) if lines else {"error": out.stderr[-2000:]}
            if "error" in res:
                raise SystemExit(f"{variant}: {res['error']}")
            times[variant].append(res["ms"])
            print(f"round {r} {variant}: event loop {res['ms']:.3f} ms per request "
                  f"({res['ok']} answered, {res['failed']} failed: {res['statuses']})", flush=True)
    med = {v: statistics.median(t) for v, t in times.items()}
    print(f"\nmedian of {args.rounds}: " + ", ".join(f"{v} {m:.3f} ms" for v, m in med.items())
          + f"; against lean: the tokenizer wrapper {med['wrapper'] / med['lean']:.2f}x, FastAPI's handler "
          f"{med['fastapi'] / med['lean']:.2f}x the event loop's CPU per request")


if __name__ == "__main__":
    main()
