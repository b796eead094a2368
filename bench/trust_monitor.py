"""Monitoring benchmark: what the monitor costs a request, and how fast it sees a shift without crying wolf.

    nice -n 5 .venv/bin/python bench/trust_monitor.py [--requests 400] [--rounds 3] [--seeds 10]
        [--stationary 20000] [--rate 10] [--skip-serve] [--json out.json]

(a) Overhead. ``observe``: the per-record cost of ``Watch.observe`` (3 windows, 4 drift rules and a
    share rule), without and with the audit log, and of the server's hook (which adds the Prometheus
    counters). ``serve``: one in-process app on a MiniLM classifier (random head: the latency is the
    model's, the labels do not matter) answers /v1/classify with one SST-2 dev sentence per request
    from 16 concurrent clients; rounds alternate the monitor on (rules + audit log) and off, on the
    same app and model. The request path only queues the texts for the monitor's thread: that time
    is the latency the monitor adds; the thread's CPU time per request is what it costs the machine.
    On 2 shared cores the end-to-end difference between the arms is within the noise.
(b) Detection. A stationary stream of Financial PhraseBank sentences (50Agree) at ``--rate``
    requests/s, then 20 % of the traffic switches to another language (ChnSentiCorp reviews) or
    another domain (WikiText-2 lines). Predictions are the gold labels with synthetic confidences
    (in-domain Beta(9, 1.5); shifted traffic Beta(4, 3), as a model is less sure off its domain),
    not a model's: the drift rules read labels, confidence, length and script, and this keeps the
    replay of 10 seeds x 20,000+ requests to seconds. The reference (what trust.json would hold) is
    built from the other half of PhraseBank. Counted: requests after the switch until the first drift
    alert (target <= 500), and alerts during the stationary part per 10,000 requests (target <= 1).
Baseline for (a): the same server with the monitor off; for (b): the targets of issue 24.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
DATA = REPO.parent / "shared" / "data"

from lmkernel.trust.alerts import Rule  # noqa: E402
from lmkernel.trust.drift import build_reference  # noqa: E402
from lmkernel.trust.watch import Watch  # noqa: E402

DRIFT_RULES = [Rule(name=f"drift_{f}", metric="drift", feature=f, value=0.2, over="1m", min_count=200,
                    cooldown="10m") for f in ("label", "confidence", "length", "script")]
SHARE_RULE = Rule(name="negative_burst", metric="share", label="negative", value=0.5, over="5m", min_count=50)


def phrasebank() -> list[tuple[str, str]]:
    path = DATA / "financial_phrasebank" / "FinancialPhraseBank-v1.0" / "Sentences_50Agree.txt"
    rows = []
    for line in path.read_text(encoding="latin-1").splitlines():
        text, _, label = line.rpartition("@")
        if text and label.strip() in ("positive", "neutral", "negative"):
            rows.append((text.strip(), label.strip()))
    return rows


def chnsenticorp() -> list[tuple[str, str]]:
    with open(DATA / "chnsenticorp" / "train.tsv", encoding="utf-8") as fh:
        return [(r["text_a"], "positive" if r["label"] == "1" else "negative")
                for r in csv.DictReader(fh, delimiter="\t") if r.get("text_a")]


def wikitext() -> list[tuple[str, str]]:
    lines = (DATA / "wikitext2" / "wiki.train.tokens").read_text(encoding="utf-8").splitlines()
    texts = [t.strip() for t in lines if len(t.strip()) > 20 and not t.strip().startswith("=")]
    return [(t, "neutral") for t in texts[:20000]]


def confidence(rng: random.Random, shifted: bool) -> float:
    c = rng.betavariate(4, 3) if shifted else rng.betavariate(9, 1.5)
    return 1 / 3 + (2 / 3) * c  # three labels: the top probability is at least 1/3


# ---------------------------------------------------------------- (b) detection

def detection(seeds: int, stationary: int, rate: float) -> dict:
    pb = phrasebank()
    shifts = {"language (ChnSentiCorp, 20 %)": chnsenticorp(), "domain (WikiText-2, 20 %)": wikitext()}
    out = {}
    for name, other in shifts.items():
        delays, false_alarms, fired_by = [], 0, {}
        for seed in range(seeds):
            rng = random.Random(seed)
            pool = pb[:]
            rng.shuffle(pool)
            ref_rows, live = pool[: len(pool) // 2], pool[len(pool) // 2:]
            ref = build_reference([lab for _, lab in ref_rows], [confidence(rng, False) for _ in ref_rows],
                                  [t for t, _ in ref_rows])
            watch = Watch(ref, DRIFT_RULES, windows=(60.0,))
            t = 0.0
            for _ in range(stationary):
                text, label = rng.choice(live)
                t += rng.expovariate(rate)
                false_alarms += sum(e.status == "firing" for e in watch.observe(
                    {"time": t, "label": label, "confidence": confidence(rng, False), "text": text}))
            delay = None
            for i in range(1, 5001):
                shifted = rng.random() < 0.2
                text, label = rng.choice(other if shifted else live)
                t += rng.expovariate(rate)
                fired = [e for e in watch.observe({"time": t, "label": label, "confidence": confidence(rng, shifted),
                                                   "text": text}) if e.status == "firing"]
                if fired:
                    delay = i
                    for e in fired:
                        fired_by[e.rule.name] = fired_by.get(e.rule.name, 0) + 1
                    break
            delays.append(delay)
        found = [d for d in delays if d is not None]
        out[name] = {"seeds": seeds, "detected": len(found),
                     "median_delay": statistics.median(found) if found else None,
                     "max_delay": max(found) if found else None, "delays": delays, "first_rule": fired_by,
                     "false_alarms_per_10k": false_alarms / (seeds * stationary) * 10_000}
    return out


# ---------------------------------------------------------------- (a) overhead

def observe_cost(n: int = 20000) -> dict:
    pb = phrasebank()
    rng = random.Random(0)
    ref = build_reference([lab for _, lab in pb], [confidence(rng, False) for _ in pb], [t for t, _ in pb])
    recs = [{"time": 1e9 + i * 0.01, "label": lab, "confidence": confidence(rng, False), "ood": False,
             "low_confidence": False, "guards": [], "text": t} for i, (t, lab) in
            enumerate(rng.choice(pb) for _ in range(n))]
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        from lmkernel.trust.audit import AuditLog

        for label, audit in (("watch", None), ("watch + audit log", AuditLog(Path(tmp) / "a.jsonl"))):
            watch = Watch(ref, DRIFT_RULES + [SHARE_RULE], audit=audit)
            start = time.perf_counter()
            for rec in recs:
                watch.observe(rec)
            out[label] = (time.perf_counter() - start) / n * 1e6
            watch.close()
    return out


def minilm_app(sentences: list[str]):
    """An app serving a MiniLM classifier (random head) with a reference from its own predictions, the
    drift and share rules and an audit log in a temporary folder."""
    import torch

    import lmkernel
    from lmkernel.artifact import save_artifact
    from lmkernel.models.resolve import load_tokenizer, resolve_model_path
    from lmkernel.serve.app import create_app
    from lmkernel.serve.predictor import ClassifierPredictor
    from lmkernel.serve.settings import ServeSettings
    from lmkernel.tasks import get_task

    tmp = Path(tempfile.mkdtemp(prefix="lmk-monitor-bench-"))
    base = resolve_model_path("minilm")
    torch.manual_seed(0)
    labels = ["negative", "positive"]
    save_artifact(tmp / "run" / "model", get_task("classification").build_model(base, labels), load_tokenizer(base),
                  {"task": "classification", "labels": labels, "base_model": str(base), "max_length": 128})
    model = lmkernel.load(tmp / "run")
    rows = model.predict(sentences[:400])
    ref = build_reference([r["label"] for r in rows], [r["score"] for r in rows], sentences[:400])
    (tmp / "run" / "model" / "trust.json").write_text(json.dumps({"version": 1, "reference": ref}))
    (tmp / "alerts.yaml").write_text("rules:\n" + "".join(
        f"  - {{name: {r.name}, metric: drift, feature: {r.feature}, value: 0.2, over: 1m}}\n" for r in DRIFT_RULES)
        + "  - {name: negative_burst, metric: share, label: negative, value: 0.9, over: 5m}\n")
    settings = ServeSettings(alerts=str(tmp / "alerts.yaml"), audit_log=str(tmp / "audit.jsonl"), admission="off")
    return create_app(settings, task="classification", load=lambda: ClassifierPredictor(model))


def serve_overhead(requests: int, rounds: int, clients: int = 16) -> dict:
    import httpx

    with open(DATA / "sst2" / "dev.tsv", encoding="utf-8") as fh:
        sentences = [r["sentence"] for r in csv.DictReader(fh, delimiter="\t")]
    app = minilm_app(sentences)
    service = app.state.service
    monitor = service.monitor
    hook: list[float] = []  # wall time on the request path (the event loop): queueing the texts
    work_cpu: list[float] = []  # the monitor thread's CPU time per request: counting, rules, audit log
    observe, count = monitor.observe, monitor._count

    def timed(*a, **k):
        start = time.perf_counter()
        observe(*a, **k)
        hook.append(time.perf_counter() - start)

    def timed_count(*a, **k):
        cpu = time.thread_time()
        count(*a, **k)
        work_cpu.append(time.thread_time() - cpu)

    monitor.observe, monitor._count = timed, timed_count

    async def arm(client, on: bool) -> list[float]:
        service.monitor = monitor if on else None
        lat: list[float] = []
        it = iter(range(requests))

        async def worker(k: int) -> None:
            for i in it:
                start = time.perf_counter()
                r = await client.post("/v1/classify", json={"texts": [sentences[(i * 7 + k) % len(sentences)]]})
                assert r.status_code == 200, r.text
                lat.append(time.perf_counter() - start)

        start = time.perf_counter()
        await asyncio.gather(*(worker(k) for k in range(clients)))
        return lat + [-(time.perf_counter() - start)]  # the last item: minus the arm's wall time

    async def main() -> dict:
        results: dict[str, list] = {"on": [], "off": []}
        async with app.router.lifespan_context(app):
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
                while (await client.get("/readyz")).status_code != 200:
                    await asyncio.sleep(0.05)
                await arm(client, True)  # warm-up: the first observation builds the monitor (once per server)
                await arm(client, False)
                monitor.flush()
                hook.clear()
                work_cpu.clear()
                for r in range(rounds):
                    for on in ((True, False) if r % 2 == 0 else (False, True)):
                        results["on" if on else "off"].append(await arm(client, on))
        return results

    res = asyncio.run(main())
    out = {}
    for key, arms in res.items():
        lat = [x for a in arms for x in a if x >= 0]
        wall = -sum(a[-1] for a in arms)
        out[key] = {"requests": len(lat), "req_s": len(lat) / wall, "mean_ms": statistics.mean(lat) * 1e3,
                    "p50_ms": statistics.median(lat) * 1e3}
    monitor.flush()
    out["monitor_cpu_ms_per_request"] = statistics.mean(work_cpu) * 1e3
    out["hook_ms_per_request"] = statistics.mean(hook) * 1e3
    out["hook_p50_ms"] = statistics.median(hook) * 1e3
    out["hook_p99_ms"] = sorted(hook)[int(len(hook) * 0.99)] * 1e3
    out["audit_lines"] = monitor.watch.audit.seq if monitor.watch and monitor.watch.audit else 0
    monitor.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=400, help="requests per arm and round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--stationary", type=int, default=20000, help="stationary requests per seed before the switch")
    ap.add_argument("--rate", type=float, default=10.0, help="requests per second of the replayed stream")
    ap.add_argument("--skip-serve", action="store_true", help="no MiniLM server arms (observe cost and detection only)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    import logging

    import torch

    logging.getLogger("lmkernel.alerts").setLevel(logging.ERROR)  # the replay's alerts are counted, not logged

    print(f"cpu capability: {torch.backends.cpu.get_cpu_capability()}, cores: {os.cpu_count()}")
    result = {"observe_us": observe_cost()}
    for k, v in result["observe_us"].items():
        print(f"observe: {k:20} {v:7.1f} us per record (target < 500)")
    if not args.skip_serve:
        s = result["serve"] = serve_overhead(args.requests, args.rounds)
        print(f"serve: monitor on  {s['on']['req_s']:.1f} req/s, mean {s['on']['mean_ms']:.2f} ms, p50 "
              f"{s['on']['p50_ms']:.2f} ms ({s['on']['requests']} requests)")
        print(f"serve: monitor off {s['off']['req_s']:.1f} req/s, mean {s['off']['mean_ms']:.2f} ms, p50 "
              f"{s['off']['p50_ms']:.2f} ms")
        print(f"serve: ratio on/off throughput {s['on']['req_s'] / s['off']['req_s']:.3f}, mean latency "
              f"{s['on']['mean_ms'] / s['off']['mean_ms']:.3f}")
        print(f"serve: on the request path (queueing for the monitor thread) mean {s['hook_ms_per_request']:.4f}, "
              f"p50 {s['hook_p50_ms']:.4f}, p99 {s['hook_p99_ms']:.4f} ms per request (target < 0.5); the monitor "
              f"thread's CPU {s['monitor_cpu_ms_per_request']:.3f} ms per request (metrics, windows, rules, audit)")
    d = result["detection"] = detection(args.seeds, args.stationary, args.rate)
    for name, r in d.items():
        print(f"detection: {name}: {r['detected']}/{r['seeds']} seeds, median {r['median_delay']} max "
              f"{r['max_delay']} requests after the switch (target <= 500); false alarms "
              f"{r['false_alarms_per_10k']:.2f} per 10,000 stationary (target <= 1); first rule {r['first_rule']}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
