"""Turn the shared finance sentiment sets into the JSONL splits the example specs read.

    python examples/finance/prepare.py            # writes examples/finance/data/*.jsonl (not shipped)

Why a script: Financial PhraseBank ships as latin-1 `sentence@label` lines with no split, FinFE as a
JSON list of `[text, 0|1|2]`; lmkernel reads CSV/TSV/JSONL with named labels. Both become
`{"text", "label"}` rows with the labels `negative`, `neutral`, `positive`, split with a fixed seed.
The data's licences (PhraseBank CC BY-NC-SA 3.0, FinFE research use) keep it out of the repository,
so the splits are made here, on the user's machine, from ../shared/data.

- English: Sentences_50Agree.txt (4,846 sentences, majority-agreed labels), de-duplicated, 80/10/10.
- Chinese: FinFE train_list.json → 90 % train / 10 % validation; eval_list.json → test (the public test
  inputs have no labels). FinFE's 0/1/2 = negative/neutral/positive (the order its README lists).
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent
SHARED = HERE.parents[2] / "shared" / "data"
FINFE_LABELS = {0: "negative", 1: "neutral", 2: "positive"}


def phrasebank(shared: Path) -> list[dict]:
    """PhraseBank rows, first occurrence of each sentence kept (the file repeats a few)."""
    path = shared / "financial_phrasebank" / "FinancialPhraseBank-v1.0" / "Sentences_50Agree.txt"
    rows, seen = [], set()
    for line in path.read_text(encoding="latin-1").splitlines():
        text, sep, label = line.strip().rpartition("@")
        if sep and text and text not in seen and label in ("negative", "neutral", "positive"):
            seen.add(text)
            rows.append({"text": text, "label": label})
    return rows


def finfe(shared: Path, name: str) -> list[dict]:
    path = shared / "bbt_fincuge_finfe" / "FinCUGE_Publish" / "finfe" / name
    return [{"text": str(text).strip(), "label": FINFE_LABELS[int(label)]}
            for text, label in json.loads(path.read_text(encoding="utf-8")) if str(text).strip()]


def split(rows: list[dict], fractions: tuple[float, ...], seed: int) -> list[list[dict]]:
    """Seeded shuffle cut into consecutive parts of the given fractions (the last takes the rest)."""
    rows = rows[:]
    random.Random(seed).shuffle(rows)
    parts, start = [], 0
    for f in fractions[:-1]:
        end = start + round(f * len(rows))
        parts.append(rows[start:end])
        start = end
    return parts + [rows[start:]]


def write_jsonl(path: Path, rows: list[dict]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    tmp.replace(path)


def prepare(shared: Path = SHARED, out: Path = HERE / "data", seed: int = 13) -> dict[str, int]:
    """Write every split; returns the row count per file."""
    out.mkdir(parents=True, exist_ok=True)
    en = dict(zip(("train", "validation", "test"), split(phrasebank(shared), (0.8, 0.1, 0.1), seed)))
    zh_train, zh_val = split(finfe(shared, "train_list.json"), (0.9, 0.1), seed)
    zh = {"train": zh_train, "validation": zh_val, "test": finfe(shared, "eval_list.json")}
    files = {f"en-{k}.jsonl": v for k, v in en.items()} | {f"zh-{k}.jsonl": v for k, v in zh.items()}
    for name, rows in files.items():
        write_jsonl(out / name, rows)
    return {name: len(rows) for name, rows in files.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", type=Path, default=SHARED, help="the shared data folder")
    ap.add_argument("--out", type=Path, default=HERE / "data")
    ap.add_argument("--seed", type=int, default=13)
    args = ap.parse_args()
    for name, n in prepare(args.shared, args.out, args.seed).items():
        print(f"{args.out / name}: {n} rows")


if __name__ == "__main__":
    main()
