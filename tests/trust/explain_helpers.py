"""Helpers of the explanation tests (imported as ``explain_helpers``; the fixtures live in conftest.py).

A *bag model* scores a text as the sum of its tokens' planted label weights, so which words decide its
label is known exactly: the planted triggers. It has what explanations use from a transformers model
(``input_ids``/``attention_mask`` in, ``.logits`` out, ``get_input_embeddings``, ``config.id2label``).
"""

from __future__ import annotations

import random
from types import SimpleNamespace

TRIGGERS = {"positive": ["superb", "满意"], "negative": ["horrible", "失望"]}
LABELS = ["negative", "neutral", "positive"]
FILLER_EN = ["the", "film", "hotel", "phone", "book", "room", "was", "a", "good", "bad"]


def bag_model(tokenizer, weights: dict[str, dict[str, float]], labels: list[str], per_token: bool = False,
              bias: dict[str, float] | None = None, seed: int = 0):
    """A model whose logits sum planted per-token label weights (``per_token``: one row of logits per token,
    plus half of the previous token's, a token classifier); every other token gets small random weights."""
    import torch
    from transformers import PretrainedConfig

    class Bag(torch.nn.Module):
        def __init__(self):
            super().__init__()
            g = torch.Generator().manual_seed(seed)
            self.embed = torch.nn.Embedding(len(tokenizer), len(labels))
            with torch.no_grad():
                self.embed.weight.copy_(torch.randn(len(tokenizer), len(labels), generator=g) * 0.1)
                self.embed.weight[tokenizer.pad_token_id] = 0
                for word, per_label in weights.items():
                    ids = tokenizer(word, add_special_tokens=False)["input_ids"]
                    for tid in ids:
                        for lab, w in per_label.items():
                            self.embed.weight[tid, labels.index(lab)] = w / len(ids)
            self.bias = torch.nn.Parameter(torch.tensor([(bias or {}).get(lab, 0.0) for lab in labels]))
            self.config = PretrainedConfig(id2label=dict(enumerate(labels)),
                                           label2id={x: i for i, x in enumerate(labels)})

        def get_input_embeddings(self):
            return self.embed

        def forward(self, input_ids, attention_mask=None, **_):
            x = self.embed(input_ids)
            if attention_mask is not None:
                x = x * attention_mask[..., None].to(x.dtype)
            if per_token:
                prev = torch.nn.functional.pad(x[:, :-1], (0, 0, 1, 0))
                return SimpleNamespace(logits=x + 0.5 * prev + self.bias)
            return SimpleNamespace(logits=x.sum(1) + self.bias)

    return Bag().eval()


def sentiment_rows(n: int, seed: int) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        pos = rng.random() < 0.5
        adjective = rng.choice(["superb", "good"] if pos else ["horrible", "bad"])
        rows.append((f"the {rng.choice(FILLER_EN[1:6])} was {adjective}", "positive" if pos else "negative"))
    return rows
