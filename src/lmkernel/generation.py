"""Text generation on any causal LM: prompts, sampling settings, stop strings, batching, streaming.

Everything heavy is transformers ``generate`` (KV cache, logits processors, stop-string criteria);
this module only turns our parameters into a ``GenerationConfig``, builds chat prompts, left-pads
batches, and cuts each output at the end of turn or a stop string so that batched, single and
streamed generation all return the same text for the same prompt.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from .errors import LmkError

Prompt = str | list[dict[str, str]]  # plain text, or a conversation of {"role", "content"} messages


@dataclass(frozen=True)
class Sampling:
    """Generation parameters; ``temperature == 0`` means greedy decoding."""

    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0  # 0 = no top-k cut
    max_new_tokens: int = 256
    repetition_penalty: float = 1.0
    stop: tuple[str, ...] = ()
    seed: int | None = None

    def __post_init__(self) -> None:
        checks = [("temperature", self.temperature >= 0, ">= 0 (0 = greedy)"),
                  ("top_p", 0 < self.top_p <= 1, "in (0, 1]"), ("top_k", self.top_k >= 0, ">= 0 (0 = off)"),
                  ("max_new_tokens", self.max_new_tokens > 0, "> 0"),
                  ("repetition_penalty", self.repetition_penalty > 0, "> 0 (1 = off)")]
        for name, ok, rule in checks:
            if not ok:
                raise LmkError(f"{name}={getattr(self, name)} is out of range", where=f"--{name.replace('_', '-')}",
                               fix=f"use a value {rule}")
        if any(not isinstance(s, str) or not s for s in self.stop):
            raise LmkError(f"stop strings must be non-empty text, got {list(self.stop)!r}", where="--stop",
                           fix="pass each stop string once, e.g. --stop '###'")


def sampling(**params: Any) -> Sampling:
    """A ``Sampling`` from keyword arguments (``stop`` may be a string or a list; ``None`` = default)."""
    params = {k: v for k, v in params.items() if v is not None}
    stop = params.pop("stop", ())
    unknown = set(params) - set(Sampling.__dataclass_fields__)
    if unknown:
        raise TypeError(f"unknown generation parameter(s): {sorted(unknown)}")
    return Sampling(stop=(stop,) if isinstance(stop, str) else tuple(stop), **params)


def has_chat_template(tokenizer) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def build_prompt(tokenizer, prompt: Prompt, *, system: str | None = None, raw: bool = False) -> str:
    """The text fed to the model: the chat template with a generation prompt where the tokenizer
    has one, else the prompt as-is (models pretrained from scratch, ``raw=True``)."""
    if isinstance(prompt, str):
        if raw or not has_chat_template(tokenizer):
            return prompt
        messages = [{"role": "user", "content": prompt}]
    else:
        messages = list(prompt)
        if not has_chat_template(tokenizer):
            return "\n".join(m["content"] for m in messages)
    if system and not (messages and messages[0].get("role") == "system"):
        messages = [{"role": "system", "content": system}] + messages
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def end_token_ids(model, tokenizer) -> list[int]:
    """Token ids that end a turn: the tokenizer's eos, the model's eos, ChatML's ``<|im_end|>``."""
    ids: list[int] = []
    for value in (tokenizer.eos_token_id, getattr(model.generation_config, "eos_token_id", None)):
        ids += value if isinstance(value, list) else [value]
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>") if "<|im_end|>" in tokenizer.get_vocab() else None
    ids.append(im_end)
    return sorted({i for i in ids if isinstance(i, int) and i >= 0})


def _config(model, tokenizer, s: Sampling):
    from transformers import GenerationConfig

    ends = end_token_ids(model, tokenizer)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (ends[0] if ends else 0)
    kwargs: dict[str, Any] = {"max_new_tokens": s.max_new_tokens, "eos_token_id": ends or None,
                              "pad_token_id": pad, "repetition_penalty": s.repetition_penalty}
    if s.temperature > 0:
        kwargs.update(do_sample=True, temperature=s.temperature, top_p=s.top_p, top_k=s.top_k or None)
    else:
        kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
    if s.stop:
        kwargs["stop_strings"] = list(s.stop)
    return GenerationConfig(**kwargs), set(ends)


def _encode(tokenizer, texts: list[str], templated: bool):
    """Left-padded batch (generation appends on the right, so every row must end at the same column)."""
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    try:
        enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=not templated)
    finally:
        tokenizer.padding_side = side
    enc.pop("token_type_ids", None)
    return enc


def finish(tokenizer, new_ids: list[int], ends: set[int], s: Sampling, pad_id: int | None) -> dict[str, Any]:
    """Cut one output at its end-of-turn token or first stop string; say why it ended."""
    kept: list[int] = []
    reason = "length"
    for t in new_ids:
        kept.append(t)
        if t in ends:
            reason = "stop"
            break
    else:
        while kept and pad_id is not None and kept[-1] == pad_id and pad_id not in ends:
            kept.pop()
    text = tokenizer.decode(kept, skip_special_tokens=True, clean_up_tokenization_spaces=False)
    cut = min((i for i in (text.find(x) for x in s.stop) if i >= 0), default=-1)
    if cut >= 0:
        text, reason = text[:cut], "stop"
    return {"text": text, "tokens": len(kept), "token_ids": kept, "finish_reason": reason}


class _Seeded:
    """Seed torch for one call without disturbing the caller's random state."""

    def __init__(self, seed: int | None):
        self.seed, self.ctx = seed, None

    def __enter__(self):
        import torch

        if self.seed is not None:
            self.ctx = torch.random.fork_rng(devices=[])
            self.ctx.__enter__()
            torch.manual_seed(self.seed)

    def __exit__(self, *exc):
        if self.ctx is not None:
            self.ctx.__exit__(*exc)


def generate(model, tokenizer, prompts: Prompt | list[Prompt], *, system: str | None = None, raw: bool = False,
             batch_size: int = 8, **params: Any) -> list[dict[str, Any]]:
    """Generate for one prompt or a list of them (batched, left-padded).

    Returns one ``{"text", "tokens", "token_ids", "prompt_tokens", "finish_reason"}`` per prompt;
    ``finish_reason`` is ``stop`` (end of turn or a stop string) or ``length`` (hit max_new_tokens).
    """
    import torch

    s = params.pop("sampling") if isinstance(params.get("sampling"), Sampling) else sampling(**params)
    single = isinstance(prompts, str) or (isinstance(prompts, list) and prompts and isinstance(prompts[0], dict))
    items = [prompts] if single else list(prompts)
    texts = [build_prompt(tokenizer, p, system=system, raw=raw) for p in items]
    templated = has_chat_template(tokenizer) and not (raw and all(isinstance(p, str) for p in items))
    config, ends = _config(model, tokenizer, s)
    device = next(model.parameters()).device
    results: list[dict[str, Any]] = [{} for _ in texts]
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # similar lengths pad less
    with torch.inference_mode(), _Seeded(s.seed):
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            enc = _encode(tokenizer, [texts[i] for i in idx], templated).to(device)
            out = model.generate(**enc, generation_config=config, tokenizer=tokenizer if s.stop else None)
            width = enc["input_ids"].shape[1]
            for row, i in enumerate(idx):
                results[i] = finish(tokenizer, out[row, width:].tolist(), ends, s, config.pad_token_id)
                results[i]["prompt_tokens"] = int(enc["attention_mask"][row].sum())
    return results


class TextStream:
    """Iterator of text pieces as the model produces them; after it ends, ``result`` holds the same
    dict ``generate`` returns. Text that may be the start of a stop string is held back until it is
    known not to be one, so the pieces always join to ``result["text"]``."""

    def __init__(self, model, tokenizer, prompt: Prompt, *, system: str | None = None, raw: bool = False,
                 **params: Any):
        from transformers.generation.streamers import BaseStreamer

        self.s = sampling(**params)
        self.tokenizer = tokenizer
        self.result: dict[str, Any] | None = None
        text = build_prompt(tokenizer, prompt, system=system, raw=raw)
        self.enc = _encode(tokenizer, [text], has_chat_template(tokenizer) and not (raw and isinstance(prompt, str)))
        self.enc = self.enc.to(next(model.parameters()).device)
        self.config, self.ends = _config(model, tokenizer, self.s)
        self.q: queue.Queue = queue.Queue()
        self.cancelled = threading.Event()
        q = self.q

        class _Put(BaseStreamer):
            first = True

            def put(self, value):
                if self.first:  # generate hands the prompt over first
                    self.first = False
                    return
                q.put(value.reshape(-1).tolist())

            def end(self):
                q.put(None)

        self.thread = threading.Thread(target=self._run, args=(model, _Put()), daemon=True)
        self.thread.start()

    def _run(self, model, streamer) -> None:
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList

        cancelled = self.cancelled

        class _Cancel(StoppingCriteria):
            def __call__(self, input_ids, scores, **kwargs):
                return torch.full((input_ids.shape[0],), cancelled.is_set(), dtype=torch.bool)

        try:
            with torch.inference_mode(), _Seeded(self.s.seed):
                model.generate(**self.enc, generation_config=self.config, streamer=streamer,
                               stopping_criteria=StoppingCriteriaList([_Cancel()]),
                               tokenizer=self.tokenizer if self.s.stop else None)
        except BaseException as e:  # handed to the reading thread
            self.q.put(e)
            self.q.put(None)

    def close(self) -> None:
        """Stop generating (a reader that leaves early, a client that disconnected)."""
        self.cancelled.set()

    def __iter__(self) -> Iterator[str]:
        try:
            yield from self._pieces()
        finally:
            self.close()  # also when the reader stops iterating early

    def _pieces(self) -> Iterator[str]:
        ids: list[int] = []
        sent = ""
        hold = max((len(x) for x in self.s.stop), default=1) - 1
        while (item := self.q.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            ids += item
            text = finish(self.tokenizer, ids, self.ends, self.s, None)["text"]
            safe = text[:len(text) - hold] if hold else text
            safe = safe.rstrip("\ufffd")  # a character whose bytes have not all arrived
            if len(safe) > len(sent) and safe.startswith(sent):
                yield safe[len(sent):]
                sent = safe
        self.thread.join()
        self.result = finish(self.tokenizer, ids, self.ends, self.s, self.config.pad_token_id)
        self.result["prompt_tokens"] = int(self.enc["attention_mask"].sum())
        if self.result["text"].startswith(sent) and len(self.result["text"]) > len(sent):
            yield self.result["text"][len(sent):]


@dataclass
class Conversation:
    """A chat kept across turns (``lmkernel generate --chat``)."""

    system: str | None = None
    messages: list[dict[str, str]] = field(default_factory=list)

    def ask(self, model, tokenizer, text: str, **params: Any) -> TextStream:
        self.messages.append({"role": "user", "content": text})
        return TextStream(model, tokenizer, list(self.messages), system=self.system, **params)

    def answered(self, text: str) -> None:
        self.messages.append({"role": "assistant", "content": text})
