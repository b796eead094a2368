"""Write a Chinese corpus from the training splits of the shared Chinese sets, for adapting MiniLM.

    python examples/zh/corpus.py                 # writes examples/zh/data/corpus.jsonl (not shipped)
    lmkernel pretrain examples/zh/minilm-zh.yaml

Why one corpus: MiniLM's English WordPiece vocabulary maps about 60 % of Chinese tokens to [UNK];
extending it and continuing MLM on reviews, finance posts, banking questions, everyday sentences,
CVs and comments gives one Chinese-reading encoder that every Chinese model of the examples starts
from (sentiment, offensive language, NER, PII names, the embedder). Only training splits are read,
so no validation or test text is ever seen in pretraining. The data's licences keep the corpus out of
the repository: it is made here, on the user's machine, from ../shared/data.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
from collections.abc import Iterator
from pathlib import Path

HERE = Path(__file__).resolve().parent
SHARED = HERE.parents[2] / "shared" / "data"


def chnsenticorp(shared: Path) -> Iterator[str]:
    with open(shared / "chnsenticorp" / "train.tsv", encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE):
            yield row["text_a"]


def finfe(shared: Path) -> Iterator[str]:
    path = shared / "bbt_fincuge_finfe" / "FinCUGE_Publish" / "finfe" / "train_list.json"
    for text, _label in json.loads(path.read_text(encoding="utf-8")):
        yield str(text)


def cold(shared: Path) -> Iterator[str]:
    with open(shared / "coldataset" / "COLDataset" / "train.csv", encoding="utf-8-sig", newline="") as fh:
        for row in csv.DictReader(fh):
            yield row["TEXT"]


def afqmc(shared: Path) -> Iterator[str]:
    with open(shared / "afqmc" / "afqmc_public" / "train.json", encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                row = json.loads(line)
                yield row["sentence1"]
                yield row["sentence2"]


def stsb_zh(shared: Path) -> Iterator[str]:
    for line in (shared / "cnsd_stsb_zh" / "cnsd-sts-train.txt").read_text(encoding="utf-8").splitlines():
        parts = line.split("||")
        if len(parts) == 4:
            yield parts[1]
            yield parts[2]


def resume(shared: Path) -> Iterator[str]:
    """Resume NER sentences rebuilt from its one-character-per-line BIO file."""
    chars: list[str] = []
    for line in (shared / "resume_ner_zh" / "train.bio").read_text(encoding="utf-8").splitlines():
        if line.strip():
            chars.append(line.split()[0])
        elif chars:
            yield "".join(chars)
            chars = []
    if chars:
        yield "".join(chars)


SOURCES = {"chnsenticorp": chnsenticorp, "finfe": finfe, "cold": cold, "afqmc": afqmc,
           "stsb_zh": stsb_zh, "resume": resume}


def build(shared: Path = SHARED, seed: int = 13) -> tuple[list[str], dict[str, int]]:
    """Unique non-empty texts of every source, shuffled with a seed; and the count kept per source."""
    texts, counts, seen = [], {}, set()
    for name, read in SOURCES.items():
        counts[name] = 0
        for text in read(shared):
            text = text.strip()
            if text and text not in seen:
                seen.add(text)
                texts.append(text)
                counts[name] += 1
    random.Random(seed).shuffle(texts)
    return texts, counts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", type=Path, default=SHARED, help="the shared data folder")
    ap.add_argument("--out", type=Path, default=HERE / "data" / "corpus.jsonl")
    ap.add_argument("--seed", type=int, default=13)
    args = ap.parse_args()
    texts, counts = build(args.shared, args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in texts), encoding="utf-8")
    tmp.replace(args.out)
    for name, n in counts.items():
        print(f"{name}: {n} texts")
    print(f"{args.out}: {len(texts)} texts, {sum(map(len, texts)):,} characters")


if __name__ == "__main__":
    main()
