"""Text generation on any causal LM: prompts, sampling settings, stop strings, batching, streaming.

Everything heavy is transformers ``generate`` (KV cache, logits processors, stop-string criteria);
this module only turns our parameters into a ``GenerationConfig``, builds prompts (``prompt_ids``:
the one path from a prompt or messages to token ids, shared by the CLI, the Python API and the
server, with each task's ``PromptStyle``), left-pads batches, and cuts each output at the end of
turn or a stop string so that batched, single and streamed generation all return the same text
for the same prompt.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
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


@dataclass(frozen=True)
class PromptStyle:
    """How a task's model was trained to read its input, so every caller (CLI, Python, server) builds
    the same prompt from the same request. Each generating task gives its own (``Task.prompt_style``)."""

    system: str | None = None  # the system prompt training added to conversations without one
    source: Callable[[str], str] | None = None  # a bare prompt -> the user turn training saw (translation)
    chat: bool = True  # False: a plain LM (pretrain clm), whose prompts are continued as-is


PLAIN = PromptStyle(chat=False)


def prompt_text(tokenizer, prompt: str | None = None, messages: list[dict[str, str]] | None = None, *,
                system: str | None = None, raw: bool = False, style: PromptStyle | None = None) -> tuple[str, bool]:
    """The text fed to the model and whether it came from the chat template (then the template holds
    the special tokens). Exactly one of ``prompt`` and ``messages``; ``raw`` feeds ``prompt`` as-is;
    ``system`` overrides the style's trained system prompt.

    Raises:
        LmkError: messages for a model without a chat template, or ones its template refuses.
    """
    text, rendered = _render(tokenizer, prompt, messages, system=system, raw=raw, style=style)
    return text, rendered is not None


def _render(tokenizer, prompt: str | None, messages: list[dict[str, str]] | None, *, system: str | None,
            raw: bool, style: PromptStyle | None) -> tuple[str, list[dict[str, str]] | None]:
    """``prompt_text``'s work: the text and, when the chat template rendered it, the messages it rendered."""
    style = style or PromptStyle()
    if (prompt is None) == (messages is None):
        raise TypeError("give exactly one of prompt and messages")
    templated = style.chat and has_chat_template(tokenizer)
    if prompt is not None:
        if raw or not templated:
            return prompt, None
        messages = [{"role": "user", "content": style.source(prompt) if style.source else prompt}]
    elif raw:
        raise LmkError("raw applies to a plain prompt, not to messages", where="raw",
                       fix="send the text as a prompt with raw, or the messages without raw")
    elif not templated:
        why = "was pretrained on plain text" if has_chat_template(tokenizer) else "has no chat template"
        raise LmkError(f"this model {why}, so it cannot read chat messages", where="messages",
                       fix="send a plain prompt to continue instead (the CLI's prompt argument, /v1/completions, "
                       "or /v1/generate with \"prompt\")")
    messages = [dict(m) for m in messages]
    system = system if system is not None else style.system
    if system and not (messages and messages[0].get("role") == "system"):
        messages = [{"role": "system", "content": system}] + messages
    try:
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True), messages
    except Exception as e:  # a template may raise on a role order it does not support (jinja's TemplateError)
        raise LmkError(f"the model's chat template refused these messages: {e}", where="messages",
                       fix="send user and assistant turns in turn, with at most one system message first") from e


def prompt_ids(tokenizer, prompt: str | None = None, messages: list[dict[str, str]] | None = None, *,
               system: str | None = None, raw: bool = False, style: PromptStyle | None = None) -> list[int]:
    """The prompt's token ids: the one prompt path of ``lmkernel generate``, ``Model.generate`` and the
    server (same arguments as ``prompt_text``)."""
    text, rendered = _render(tokenizer, prompt, messages, system=system, raw=raw, style=style)
    if rendered is None:
        ids = tokenizer(text, add_special_tokens=True, truncation=False, verbose=False)["input_ids"]
    else:  # message text never becomes the template's control tokens (trust/injection.py)
        from .trust.injection import encode_messages

        ids = encode_messages(tokenizer, rendered, text, add_generation_prompt=True)
    if not ids:
        raise LmkError("the prompt has no tokens", where="prompt", fix="send some text to answer or continue")
    return ids


def _prompt_ids(tokenizer, prompt: Prompt, **kwargs: Any) -> list[int]:
    return prompt_ids(tokenizer, prompt, **kwargs) if isinstance(prompt, str) else \
        prompt_ids(tokenizer, messages=list(prompt), **kwargs)


def build_prompt(tokenizer, prompt: Prompt, *, system: str | None = None, raw: bool = False,
                 style: PromptStyle | None = None) -> str:
    """The text ``prompt_ids`` tokenizes, for a prompt or a conversation."""
    if isinstance(prompt, str):
        return prompt_text(tokenizer, prompt, system=system, raw=raw, style=style)[0]
    return prompt_text(tokenizer, messages=list(prompt), system=system, raw=raw, style=style)[0]


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


def _left_padded(rows: list[list[int]], pad_id: int, device) -> dict[str, Any]:
    """A left-padded batch (generation appends on the right, so every row must end at the same column)."""
    import torch

    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        if r:
            ids[i, width - len(r):] = torch.tensor(r)
            mask[i, width - len(r):] = 1
    return {"input_ids": ids.to(device), "attention_mask": mask.to(device)}


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
             style: PromptStyle | None = None, batch_size: int = 8, **params: Any) -> list[dict[str, Any]]:
    """Generate for one prompt or a list of them (batched, left-padded); prompts go through ``prompt_ids``.

    Returns one ``{"text", "tokens", "token_ids", "prompt_tokens", "finish_reason"}`` per prompt;
    ``finish_reason`` is ``stop`` (end of turn or a stop string) or ``length`` (hit max_new_tokens).
    """
    import torch

    s = params.pop("sampling") if isinstance(params.get("sampling"), Sampling) else sampling(**params)
    single = isinstance(prompts, str) or (isinstance(prompts, list) and prompts and isinstance(prompts[0], dict))
    items = [prompts] if single else list(prompts)
    rows = [_prompt_ids(tokenizer, p, system=system, raw=raw, style=style) for p in items]
    config, ends = _config(model, tokenizer, s)
    device = next(model.parameters()).device
    results: list[dict[str, Any]] = [{} for _ in rows]
    order = sorted(range(len(rows)), key=lambda i: len(rows[i]))  # similar lengths pad less
    with torch.inference_mode(), _Seeded(s.seed):
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            enc = _left_padded([rows[i] for i in idx], config.pad_token_id, device)
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
                 style: PromptStyle | None = None, **params: Any):
        from transformers.generation.streamers import BaseStreamer

        self.s = sampling(**params)
        self.tokenizer = tokenizer
        self.result: dict[str, Any] | None = None
        ids = _prompt_ids(tokenizer, prompt, system=system, raw=raw, style=style)
        self.config, self.ends = _config(model, tokenizer, self.s)
        self.enc = _left_padded([ids], self.config.pad_token_id, next(model.parameters()).device)
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
    style: PromptStyle | None = None

    def ask(self, model, tokenizer, text: str, **params: Any) -> TextStream:
        self.messages.append({"role": "user", "content": text})
        return TextStream(model, tokenizer, list(self.messages), system=self.system, style=self.style, **params)

    def answered(self, text: str) -> None:
        self.messages.append({"role": "assistant", "content": text})
