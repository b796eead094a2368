"""Does the ood flag catch text in a language the model cannot read? An English classifier's flags on its
own language's test texts and on Chinese texts, by the detector alone and with the unknown-token signal.

Usage: python bench/trust_ood_language.py RUN --validation EN_VAL.jsonl --same EN_TEST.jsonl
       --foreign ZH_TEST.jsonl [--limit 300]
(the finance example: RUN runs/finance-en, files examples/finance/data/{en-validation,en-test,zh-test}.jsonl,
made by examples/finance/prepare.py)."""

from __future__ import annotations

import argparse
import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _texts(path: str, limit: int) -> list[str]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line)["text"] for line in f if line.strip()][:limit]


def main() -> None:
    import torch

    import lmkernel
    from lmkernel.trust.calibrate import unknown_share_threshold

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run")
    ap.add_argument("--validation", required=True)
    ap.add_argument("--same", required=True, help="test texts in the training language")
    ap.add_argument("--foreign", required=True, help="texts in a language the vocabulary cannot read")
    ap.add_argument("--limit", type=int, default=300)
    args = ap.parse_args()
    print("cpu capability:", torch.backends.cpu.get_cpu_capability())
    model = lmkernel.load(args.run)
    if model.trust is None:
        raise SystemExit(f"{args.run} has no trust profile (train it with a validation split)")
    max_length = model.card.get("max_length", 128)
    unknown = unknown_share_threshold(model.tokenizer, _texts(args.validation, 10**9), max_length)
    sets = {"same language": _texts(args.same, 10**9), "foreign": _texts(args.foreign, args.limit)}
    rows = {}
    for signal in ("detector only", "detector + unknown tokens"):
        model.trust.data["ood"].pop("unknown_share", None)
        if signal != "detector only":
            model.trust.data["ood"]["unknown_share"] = unknown
        rows[signal] = {name: sum(bool(r["ood"]) for r in model.predict(texts)) / len(texts)
                        for name, texts in sets.items()}
    print(f"unknown-share threshold: {unknown}")
    print("| flags | " + " | ".join(f"{k} flagged ({len(v)})" for k, v in sets.items()) + " |")
    print("|---|" + "---|" * len(sets))
    for signal, shares in rows.items():
        print(f"| {signal} | " + " | ".join(f"{v:.3f}" for v in shares.values()) + " |")


if __name__ == "__main__":
    main()
