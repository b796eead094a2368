"""Write the bundled demo dataset: short product/film/hotel reviews in English and Chinese.

The rows are composed from hand-written phrases (seeded, so the files are reproducible):
    python examples/make_reviews.py
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

EN_SUBJECTS = ["the film", "this movie", "the hotel", "our room", "the laptop", "this phone", "the book",
               "the service", "the restaurant", "the headphones", "the staff", "the camera", "this game",
               "the delivery", "the app"]
EN_POS = ["was wonderful", "exceeded my expectations", "is worth every penny", "made my day",
          "was a real pleasure", "works perfectly", "is beautifully made", "was friendly and fast",
          "is the best I have tried", "left me smiling", "was clean and comfortable", "is brilliant",
          "felt great value", "surprised me in a good way", "was charming and warm"]
EN_NEG = ["was a waste of money", "broke after two days", "was rude and slow", "is painfully boring",
          "was dirty and noisy", "crashes all the time", "is badly made", "left me disappointed",
          "was the worst I have tried", "never arrived on time", "is overpriced junk", "felt cheap and flimsy",
          "was a complete letdown", "is frustrating to use", "smelled awful"]
EN_TAIL = ["", ".", "!", ", honestly.", ", I would say.", " and I will tell my friends.", ", as expected."]

ZH_SUBJECTS = ["这部电影", "这家酒店", "房间", "这台电脑", "这本书", "服务", "这家餐厅", "这款手机", "快递",
               "耳机", "前台", "这个软件", "早餐", "屏幕", "做工"]
ZH_POS = ["非常好", "超出预期", "物超所值", "让人很开心", "干净舒适", "质量很好", "很满意", "态度热情",
          "值得推荐", "特别棒", "速度很快", "性价比很高", "设计漂亮", "体验很好", "下次还会再来"]
ZH_NEG = ["太差了", "很失望", "浪费钱", "又脏又吵", "质量太差", "态度恶劣", "不值这个价", "用了两天就坏了",
          "非常难用", "一点也不好", "太慢了", "再也不会买了", "很糟糕", "让人生气", "完全不推荐"]
ZH_TAIL = ["", "。", "！", "，真的。", "，总体来说。", "，推荐给朋友。", "。"]


def _rows(rng: random.Random, n: int) -> list[tuple[str, str]]:
    rows = []
    for i in range(n):
        positive = rng.random() < 0.5
        if i % 2 == 0:
            text = f"{rng.choice(EN_SUBJECTS)} {rng.choice(EN_POS if positive else EN_NEG)}{rng.choice(EN_TAIL)}"
            text = text[0].upper() + text[1:]
        else:
            text = f"{rng.choice(ZH_SUBJECTS)}{rng.choice(ZH_POS if positive else ZH_NEG)}{rng.choice(ZH_TAIL)}"
        rows.append((text, "positive" if positive else "negative"))
    return rows


def main() -> None:
    rng = random.Random(7)
    out = Path(__file__).parent / "data"
    out.mkdir(exist_ok=True)
    seen: set[str] = set()
    for split, n in (("train", 480), ("validation", 120), ("test", 120)):
        rows = []
        while len(rows) < n:
            for text, label in _rows(rng, n):
                if text not in seen and len(rows) < n:
                    seen.add(text)
                    rows.append((text, label))
        with open(out / f"reviews_{split}.csv", "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(["text", "label"])
            writer.writerows(rows)


if __name__ == "__main__":
    main()
