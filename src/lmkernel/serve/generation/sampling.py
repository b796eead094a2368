"""Per-request sampling: each request in a running batch keeps its own parameters and RNG.

The logits warpers are transformers' own (temperature, top-k, top-p, repetition penalty); only
the OpenAI frequency/presence penalties, which transformers does not have, are written here.
Temperature 0 means greedy, as in the OpenAI API.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class SamplingParams:
    """What one request asked for; validated by the request schemas before it gets here."""

    max_new_tokens: int
    temperature: float = 1.0  # 0: greedy
    top_p: float = 1.0
    top_k: int = 0  # 0: off
    repetition_penalty: float = 1.0  # transformers' (CTRL) penalty on every token seen, prompt included
    frequency_penalty: float = 0.0  # OpenAI: minus penalty x count of the token in the completion so far
    presence_penalty: float = 0.0  # OpenAI: minus penalty once a token has appeared in the completion
    seed: int | None = None
    stop: tuple[str, ...] = ()
    ignore_eos: bool = False

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


@dataclass(eq=False)
class Sampler:
    """Picks the next token of one request from its logits row."""

    params: SamplingParams
    processors: Any = None  # transformers.LogitsProcessorList
    generator: Any = None  # torch.Generator seeded from params.seed; None: torch's global RNG
    counts: dict[int, int] = field(default_factory=dict)  # completion token -> times generated

    @classmethod
    def create(cls, params: SamplingParams) -> Sampler:
        import torch
        from transformers import (
            LogitsProcessorList,
            RepetitionPenaltyLogitsProcessor,
            TemperatureLogitsWarper,
            TopKLogitsWarper,
            TopPLogitsWarper,
        )

        procs = LogitsProcessorList()
        if params.repetition_penalty != 1.0:
            procs.append(RepetitionPenaltyLogitsProcessor(params.repetition_penalty))
        if not params.greedy:
            if params.temperature != 1.0:
                procs.append(TemperatureLogitsWarper(params.temperature))
            if params.top_k > 0:
                procs.append(TopKLogitsWarper(params.top_k))
            if params.top_p < 1.0:
                procs.append(TopPLogitsWarper(params.top_p))
        generator = None
        if params.seed is not None and not params.greedy:
            generator = torch.Generator().manual_seed(params.seed)
        return cls(params, procs, generator)

    def __call__(self, logits, seen: list[int]) -> int:
        """The next token from ``logits`` (1-D, vocabulary) given every token ``seen`` so far."""
        import torch

        p = self.params
        scores = logits.float().unsqueeze(0)
        if self.counts and (p.frequency_penalty or p.presence_penalty):
            ids = torch.tensor(list(self.counts))
            n = torch.tensor(list(self.counts.values()), dtype=scores.dtype)
            scores[0, ids] -= p.frequency_penalty * n + p.presence_penalty
        if self.processors:
            scores = self.processors(torch.tensor([seen]), scores)
        probs = None if p.greedy else torch.softmax(scores, -1)
        if probs is None or not bool(torch.isfinite(probs).all()):  # a temperature of 1e-30 is greedy, not NaN
            token = int(scores.argmax(-1))
        else:
            token = int(torch.multinomial(probs, 1, generator=self.generator))
        self.counts[token] = self.counts.get(token, 0) + 1
        return token
