"""Small generated corpora (English + Chinese) and spec writers for the pretraining tests."""

from __future__ import annotations

import random
from pathlib import Path

WORDS = ("the market rose as banks reported strong results while the central bank kept rates steady and "
         "investors bought shares of technology companies after the news").split()
ZH = ["今天天气很好", "我们去北京大学看看", "股票价格上涨了", "这家酒店服务太差了", "自然语言处理很有趣",
      "房间干净又安静"]


def corpus_lines(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    lines = []
    for i in range(n):
        text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 24)))
        if i % 3 == 0:
            text += "。" + "，".join(rng.sample(ZH, 2))
        lines.append(text)
    return lines


def write_spec(path: Path, objective: str, extra: str = "", model: str | None = None) -> Path:
    arch = "encoder" if objective == "mlm" else "decoder"
    model = model or f"{{arch: {arch}, preset: tiny, hidden_size: 32, num_heads: 2, intermediate_size: 64}}"
    path.write_text(f"""task: {{type: pretrain, objective: {objective}}}
data: {{train: corpus/train.txt, validation: corpus/valid.txt, max_length: 32}}
model: {model}
tokenizer: {{vocab_size: 300}}
train: {{max_steps: 12, batch_size: 8, lr: 3e-3, eval_every: 6, log_every: 2, precision: fp32}}
output: {{dir: runs/{objective}}}
{extra}""", encoding="utf-8")
    return path
