"""The share of one predicted label per time window of a feed: the evidence for an alert threshold.

    python examples/finance/window_shares.py runs/finance-en examples/finance/feed.jsonl --label negative

Classifies every line with `lmkernel.load(run).predict` and prints, per window (5 minutes by
default), the line count and the share predicted as `--label`. Set a `share` rule's value between the
highest stationary share and the lowest burst share.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def window_shares(rows: list[dict], labels: list[str], label: str, window: float) -> list[dict]:
    """[{start, n, share}] per window of ``window`` seconds, windows aligned to the first line's."""
    if not rows:
        return []
    t0 = min(r["ts"] for r in rows)
    counts: dict[int, list[int]] = {}
    for row, pred in zip(rows, labels):
        c = counts.setdefault(int((row["ts"] - t0) // window), [0, 0])
        c[0] += 1
        c[1] += pred == label
    return [{"start": t0 + k * window, "n": n, "share": round(hit / n, 4)}
            for k, (n, hit) in sorted(counts.items())]


def main() -> None:
    import lmkernel

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("feed", type=Path)
    ap.add_argument("--label", default="negative")
    ap.add_argument("--window", type=float, default=300.0, help="seconds")
    args = ap.parse_args()
    rows = [json.loads(line) for line in args.feed.read_text(encoding="utf-8").splitlines() if line.strip()]
    preds = [p["label"] for p in lmkernel.load(args.run).predict([r["text"] for r in rows])]
    for w in window_shares(rows, preds, args.label, args.window):
        print(f"{w['start']:.0f}  n={w['n']:4d}  {args.label} share {w['share']:.3f}")


if __name__ == "__main__":
    main()
