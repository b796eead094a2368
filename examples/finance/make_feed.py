"""Write a replay feed for the finance monitor: a stationary news mix, then a burst of negative news.

    python examples/finance/make_feed.py                      # examples/finance/feed.jsonl, 2,000 lines
    python examples/finance/make_feed.py --zh-share 0.3       # the burst partly in Chinese (a language switch)

Each line is {"ts": unix seconds, "text": ..., "source": ...}. The texts are the held-out sentences
(validation and test splits written by prepare.py, never the training split), so the model has not
seen them. Stationary minutes draw from the pool at its natural label mix; burst minutes draw
`--burst-negative` of their lines from the negative sentences. Everything is seeded: the same
arguments give a byte-identical file. The feed is generated here rather than shipped because the
sentences' licences (Financial PhraseBank: CC BY-NC-SA 3.0; FinFE: none stated) do not allow it.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent
START = 1_798_761_600  # 2027-01-01 00:00 UTC: a fixed clock, so the feed is reproducible
SOURCES = {"en": "newswire", "zh": "stock-forum"}


def read_pool(data: Path, lang: str) -> dict[str, list[str]]:
    """Held-out texts of one language grouped by their gold label."""
    pool: dict[str, list[str]] = {}
    for split in ("validation", "test"):
        path = data / f"{lang}-{split}.jsonl"
        for line in path.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            pool.setdefault(row["label"], []).append(row["text"])
    return pool


def _draw(rng: random.Random, pool: dict[str, list[str]], negative: float | None) -> str:
    """One text: at the pool's own mix when ``negative`` is None, else negative with that probability."""
    if negative is None:
        labels = sorted(pool)
        weights = [len(pool[k]) for k in labels]
        label = rng.choices(labels, weights)[0]
    elif rng.random() < negative:
        label = "negative"
    else:
        label = rng.choice(sorted(k for k in pool if k != "negative"))
    return rng.choice(pool[label])


def build_feed(pools: dict[str, dict[str, list[str]]], *, seed: int = 0, start: int = START,
               stationary_min: int = 30, burst_min: int = 10, per_min: int = 50,
               burst_negative: float = 0.5, zh_share: float = 0.0) -> list[dict]:
    """The feed's rows in time order: ``per_min`` lines a minute at seeded times within each minute.

    ``pools``: {"en": {label: texts}, "zh": {...}}; "zh" is needed only when ``zh_share`` > 0 (the share
    of burst lines drawn from the Chinese pool instead of the English one)."""
    rng = random.Random(seed)
    rows = []
    for minute in range(stationary_min + burst_min):
        burst = minute >= stationary_min
        for _ in range(per_min):
            lang = "zh" if burst and zh_share and rng.random() < zh_share else "en"
            text = _draw(rng, pools[lang], burst_negative if burst else None)
            ts = round(start + 60 * minute + 60 * rng.random(), 3)
            rows.append({"ts": ts, "text": text, "source": SOURCES[lang]})
    rows.sort(key=lambda r: r["ts"])
    return rows


def write_feed(rows: list[dict], path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    tmp.replace(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=HERE / "data", help="where prepare.py wrote the splits")
    ap.add_argument("--out", type=Path, default=HERE / "feed.jsonl")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--start", type=int, default=START, help="unix time of the first minute")
    ap.add_argument("--stationary-min", type=int, default=30, help="minutes of the normal mix")
    ap.add_argument("--burst-min", type=int, default=10, help="minutes of the burst that follows")
    ap.add_argument("--per-min", type=int, default=50, help="lines a minute")
    ap.add_argument("--burst-negative", type=float, default=0.5, help="share of negative lines in the burst")
    ap.add_argument("--zh-share", type=float, default=0.0, help="share of burst lines in Chinese")
    args = ap.parse_args()
    if not (args.data / "en-test.jsonl").exists():
        raise SystemExit(f"{args.data} has no splits: run python examples/finance/prepare.py first")
    pools = {"en": read_pool(args.data, "en")}
    if args.zh_share > 0:
        pools["zh"] = read_pool(args.data, "zh")
    rows = build_feed(pools, seed=args.seed, start=args.start, stationary_min=args.stationary_min,
                      burst_min=args.burst_min, per_min=args.per_min, burst_negative=args.burst_negative,
                      zh_share=args.zh_share)
    write_feed(rows, args.out)
    print(f"{args.out}: {len(rows)} lines; burst starts at ts {args.start + 60 * args.stationary_min}")


if __name__ == "__main__":
    main()
