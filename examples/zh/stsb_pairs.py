"""Write Chinese STS-B (cnsd_stsb_zh) as scored pairs for the embedding task: train and dev splits.

    python examples/zh/stsb_pairs.py             # examples/zh/data/stsb-{train,dev}.jsonl (not shipped)
    lmkernel run examples/zh/embedding-zh.yaml

The shared files hold ``id||sentence1||sentence2||score`` lines; the embedding task reads
``{"sentence1", "sentence2", "score"}`` rows (scored pairs, CoSENT loss). The data's licence keeps the
rows out of the repository: they are written here, on the user's machine, from ../shared/data.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
SHARED = HERE.parents[2] / "shared" / "data"


def pairs(path: Path) -> list[dict]:
    """The well-formed lines of one cnsd file as rows (malformed lines are skipped, as the source has some)."""
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        parts = line.split("||")
        if len(parts) == 4:
            rows.append({"sentence1": parts[1], "sentence2": parts[2], "score": float(parts[3])})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", type=Path, default=SHARED, help="the shared data folder")
    ap.add_argument("--out", type=Path, default=HERE / "data", help="folder for stsb-train/dev.jsonl")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for split in ("train", "dev"):
        rows = pairs(args.shared / "cnsd_stsb_zh" / f"cnsd-sts-{split}.txt")
        out = args.out / f"stsb-{split}.jsonl"
        tmp = out.with_suffix(".tmp")
        tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
        tmp.replace(out)
        print(f"{out}: {len(rows)} pairs")


if __name__ == "__main__":
    main()
