"""Write the bundled NER demo data: English and Chinese sentences with PER, LOC and ORG entities.

Sentences are composed from hand-written templates and names (seeded, so the files are reproducible):
    python examples/make_ner.py
English is one word per line; Chinese is one character per line, as Chinese NER corpora are. Tags are BIO.
"""

from __future__ import annotations

import random
from pathlib import Path

EN = {
    "PER": ["John Smith", "Maria Garcia", "Angela Merkel", "Li Wei", "Peter Blackburn", "Sarah Connor", "Tom"],
    "LOC": ["Paris", "New York", "Berlin", "Tokyo", "South Africa", "London", "the Alps"],
    "ORG": ["Google", "Reuters", "the United Nations", "Siemens", "Oxford University", "FIFA", "Bank of England"],
}
EN_TEMPLATES = [
    "{PER} works for {ORG} in {LOC} .", "{PER} visited {LOC} last week .", "{ORG} opened an office in {LOC} .",
    "Yesterday {PER} met {PER} at {ORG} .", "{PER} said the talks in {LOC} went well .",
    "Shares of {ORG} rose 3 percent on Monday .", "The weather in {LOC} was cold .", "{PER} left {ORG} in 1996 .",
]
ZH = {
    "PER": ["张伟", "王芳", "李明", "刘洋", "陈静"],
    "LOC": ["北京", "上海", "广州", "香港", "长城"],
    "ORG": ["清华大学", "阿里巴巴", "中国银行", "新华社", "联合国"],
}
ZH_TEMPLATES = ["{PER}在{ORG}工作。", "{PER}去了{LOC}。", "{ORG}在{LOC}开设了办公室。", "{PER}和{PER}在{LOC}见面。",
                "{LOC}的天气很好。", "{ORG}发布了新的报告。"]


def _fill(template: str, names: dict[str, list[str]], rng: random.Random, chinese: bool) -> list[tuple[str, str]]:
    """Tokens and BIO tags of one filled template (the first word of "the United Nations" is not tagged)."""
    out: list[tuple[str, str]] = []
    for i, part in enumerate(template.replace("{", "}").split("}")):
        if i % 2:  # an entity slot
            name = rng.choice(names[part])
            words = list(name) if chinese else name.split()
            if words[0] == "the":
                out.append(("the", "O"))
                words = words[1:]
            out += [(w, ("B-" if j == 0 else "I-") + part) for j, w in enumerate(words)]
        else:
            out += [(w, "O") for w in (list(part) if chinese else part.split())]
    return out


def sentences(n: int, seed: int) -> list[list[tuple[str, str]]]:
    rng = random.Random(seed)
    return [_fill(rng.choice(ZH_TEMPLATES), ZH, rng, True) if i % 3 == 2
            else _fill(rng.choice(EN_TEMPLATES), EN, rng, False) for i in range(n)]


def main() -> None:
    out = Path(__file__).resolve().parent / "data"
    for split, n, seed in (("train", 300, 1), ("validation", 60, 2), ("test", 60, 3)):
        text = "".join("".join(f"{w} {t}\n" for w, t in s) + "\n" for s in sentences(n, seed))
        (out / f"ner_{split}.conll").write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
