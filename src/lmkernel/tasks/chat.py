"""Chat / instruction tuning of a causal LM: conversations in, loss on the assistant's words only.

Records are JSONL ``{"messages": [{"role", "content"}, ...]}`` or ``{"prompt", "response"}``
(CSV/TSV with prompt/response columns work too). The model's chat template renders each
conversation; character spans of the assistant turns (their end-of-turn token included) are
mapped onto tokens with the fast tokenizer's offsets, and every other token gets label -100.

Conversations longer than ``data.max_length`` are cut after the last assistant turn that fits
whole; one whose first assistant turn does not fit is dropped. Both are counted and printed.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field

from ..data.readers import BadRow, read_rows
from ..errors import LmkError
from ..trust.injection import content_spans, special_ids, split_in_content
from ..tuning.base import is_prompt_learning
from .base import Batch, Dataset, Example, Feature, TaskInfo, TaskOptions
from .classification import check_bad_rows

ROLES = ("system", "user", "assistant")

# For tokenizers without a chat template (a model pretrained from scratch): plain "role: text"
# turns, the assistant's ended by the eos token so generation knows where to stop.
PLAIN_TEMPLATE = (
    "{% for m in messages %}{{ m['role'] + ': ' + m['content'] }}"
    "{% if m['role'] == 'assistant' %}{{ eos_token }}{% endif %}{{ '\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ 'assistant: ' }}{% endif %}"
)


def check_messages(messages: Any) -> str | None:
    """Why a ``messages`` value is not a usable conversation, or None when it is."""
    if not isinstance(messages, list) or not messages:
        return "'messages' must be a non-empty list of {\"role\", \"content\"} objects"
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or "role" not in m or "content" not in m:
            return f"messages[{i}] must be an object with 'role' and 'content'"
        if m["role"] not in ROLES:
            return f"messages[{i}] has role {m['role']!r}; roles are {', '.join(ROLES)}"
        if not isinstance(m["content"], str) or not m["content"].strip():
            return f"messages[{i}] ({m['role']}) has empty or non-text content"
        if m["role"] == "system" and i > 0:
            return f"messages[{i}]: a system message may only come first"
    if not any(m["role"] == "assistant" for m in messages):
        return "the conversation has no assistant message, so there is nothing to learn"
    return None


def row_messages(obj: dict[str, Any]) -> tuple[list[dict[str, str]] | None, str | None]:
    """(messages, None) from a ``messages`` or ``prompt``/``response`` record, or (None, reason)."""
    if "messages" in obj:
        reason = check_messages(obj["messages"])
        return (None, reason) if reason else ([{"role": m["role"], "content": m["content"]}
                                               for m in obj["messages"]], None)
    if "prompt" in obj and "response" in obj:
        msgs = [{"role": "user", "content": obj["prompt"]}, {"role": "assistant", "content": obj["response"]}]
        if isinstance(obj.get("system"), str) and obj["system"].strip():
            msgs.insert(0, {"role": "system", "content": obj["system"]})
        reason = check_messages(msgs)
        return (None, reason) if reason else (msgs, None)
    return None, f"needs 'messages' or 'prompt' and 'response'; keys are {sorted(obj)}"


def ensure_template(tokenizer) -> None:
    """Give a tokenizer without a chat template a plain one (saved with the artifact)."""
    if not getattr(tokenizer, "chat_template", None):
        tokenizer.chat_template = PLAIN_TEMPLATE


def assistant_spans(tokenizer, messages: list[dict[str, str]]) -> tuple[str, list[tuple[int, int]]]:
    """The rendered conversation and the character span of each assistant turn, up to and
    including its end-of-turn token (the newline after it is never generated, so not learnt)."""
    render = tokenizer.apply_chat_template
    full = render(messages, tokenize=False)
    spans = []
    eos = tokenizer.eos_token or ""
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        before = render(messages[:i], tokenize=False, add_generation_prompt=True) if i else ""
        upto = render(messages[:i + 1], tokenize=False)
        if not full.startswith(upto) or not upto.startswith(before):
            start = full.find(m["content"])  # templates that rewrite earlier turns: fall back to the content
            if start < 0:
                raise LmkError("the chat template drops assistant text; cannot tell which tokens to learn",
                               where="model.name", fix="use a model whose chat template keeps every turn")
            end = start + len(m["content"])
            if eos and full.startswith(eos, end):
                end += len(eos)
        else:
            start, end = len(before), len(upto)
            turn = upto[start:]
            cut = turn.rfind(eos) if eos else -1
            end = start + (cut + len(eos) if cut >= 0 else len(turn.rstrip()))
        spans.append((start, end))
    return full, spans


def encode_conversation(tokenizer, messages: list[dict[str, str]], max_length: int) -> Feature | None:
    """input_ids and labels (-100 outside assistant turns), cut to ``max_length`` after the last
    whole assistant turn that fits; None when not even the first one fits."""
    text, spans = assistant_spans(tokenizer, messages)
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = enc["input_ids"], enc["offset_mapping"]
    if special_ids(tokenizer).intersection(ids):  # message text never becomes control tokens (trust/injection.py)
        content = content_spans(tokenizer, messages, text)
        if content is not None:
            ids, offsets = split_in_content(tokenizer, text, ids, offsets, content)
    labels = [-100] * len(ids)
    turn_ends: list[int] = []  # token index just past each assistant turn
    for start, end in spans:
        last = -1
        for k, (a, b) in enumerate(offsets):
            if b > a and a >= start and b <= end:
                labels[k] = ids[k]
                last = k
            elif b > a and a < end <= b:  # a token straddling the end (merged with the newline)
                labels[k] = ids[k]
                last = k
        if last >= 0:
            turn_ends.append(last + 1)
    if len(ids) > max_length:
        fitting = [e for e in turn_ends if e <= max_length]
        if not fitting:
            return None
        ids, labels = ids[:fitting[-1]], labels[:fitting[-1]]
    if all(x == -100 for x in labels):
        return None
    return {"input_ids": ids, "labels": labels}


SYSTEM_PROMPT = Field(None, description="System message added to every conversation that has none.")
GENERATION_SERVING = ("lmkernel.serve.routes.generate:router",
                      "lmkernel.serve.generation.predictor:GenerationPredictor")


class Options(TaskOptions):
    type: Literal["chat"] = "chat"
    system_prompt: str | None = SYSTEM_PROMPT


class ChatTask:
    """Instruction tuning; also the base of translation and summarization (see ``seq2seq.py``)."""

    name: ClassVar[str] = "chat"
    auto_model: ClassVar[str] = "AutoModelForCausalLM"

    def __init__(self, options: Any = None) -> None:
        self.options = options
        self.system_prompt = getattr(options, "system_prompt", None)
        self.keep_logits_only_where_learnt = False  # set by build_model when the model supports it
        self.share_prefix = False  # likewise: run the batch's common prefix once (``shared_prefix.py``)
        self.dropped = 0

    # -- reading ------------------------------------------------------------------------------
    def read(self, path: Path, data: Any, labels: list[str] | None) -> Dataset:
        result = read_rows(path, [], data.format)
        bad = list(result.bad)
        examples = []
        for row in result.rows:
            messages, reason = row_messages(row.fields)
            if reason:
                bad.append(BadRow(str(path), row.line, reason))
                continue
            text = "\n".join(m["content"] for m in messages)
            examples.append(Example(text, None, str(path), row.line, {"messages": messages}))
        bad.sort(key=lambda b: b.line)
        check_bad_rows(bad, data.on_bad_rows, str(path))
        return Dataset(examples, bad)

    def infer_labels(self, examples: list[Example]) -> list[str]:
        return []  # a language model has no label set

    # -- model and features -------------------------------------------------------------------
    def build_model(self, path: Path, labels: list[str]):
        import inspect

        import torch
        from transformers import AutoModelForCausalLM

        from ..models.resolve import load_pretrained

        model = load_pretrained(AutoModelForCausalLM, path, dtype=torch.float32)
        self.keep_logits_only_where_learnt = "logits_to_keep" in inspect.signature(model.forward).parameters
        from .shared_prefix import supports_shared_prefix

        self.share_prefix = self.keep_logits_only_where_learnt and supports_shared_prefix(model)
        return model

    def conversation(self, example: Example) -> list[dict[str, str]]:
        messages = example.fields["messages"]
        if self.system_prompt and messages[0]["role"] != "system":
            messages = [{"role": "system", "content": self.system_prompt}] + messages
        return messages

    def encode(self, examples: list[Example], tokenizer, labels: list[str], max_length: int) -> list[Feature]:
        ensure_template(tokenizer)
        features, dropped = [], 0
        for e in examples:
            f = encode_conversation(tokenizer, self.conversation(e), max_length)
            if f is None:
                dropped += 1
                continue
            features.append(f)
        self.dropped += dropped
        if dropped:
            print(f"note: {dropped} of {len(examples)} conversation(s) dropped: their first assistant turn "
                  f"ends beyond data.max_length={max_length} tokens (raise it to keep them)")
        return features

    def collate(self, features: list[Feature], pad_id: int) -> Batch:
        """Right-padded ids, mask and labels. Where the model allows it, logits are computed only at
        positions whose next token is learnt (a bool ``logits_to_keep`` mask and matching
        ``shift_labels``): the vocabulary projection is a fifth of SmolLM2's compute per token and
        its float logits the largest activation, and prompts are most of a translation example."""
        import torch

        width = max(len(f["input_ids"]) for f in features)
        ids = torch.full((len(features), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(features), width), dtype=torch.long)
        labels = torch.full((len(features), width), -100, dtype=torch.long)
        for i, f in enumerate(features):
            n = len(f["input_ids"])
            ids[i, :n] = torch.tensor(f["input_ids"])
            mask[i, :n] = 1
            labels[i, :n] = torch.tensor(f["labels"])
        batch = {"input_ids": ids, "attention_mask": mask, "labels": labels}
        if self.keep_logits_only_where_learnt:
            shifted = torch.nn.functional.pad(labels[:, 1:], (0, 1), value=-100)
            keep = shifted != -100
            batch["logits_to_keep"] = keep
            batch["shift_labels"] = shifted[keep]
        return batch

    def forward(self, model, batch: Batch):
        """The training and evaluation forward: the rows' common prefix (system turn, instruction)
        runs once for the batch. Not for prompt/prefix tuning, nor with several processes: DDP and FSDP
        expect one forward per backward, and the packed form is one forward but of another shape on each rank."""
        import torch

        from .shared_prefix import forward_packed, forward_with_shared_prefix, packs_attention, shared_prefix_length

        distributed = torch.distributed.is_available() and torch.distributed.is_initialized() \
            and torch.distributed.get_world_size() > 1
        if is_prompt_learning(model):  # virtual tokens go before the rows: no shared prefix to run once
            return model(**_with_virtual_tokens(model, batch))
        prefix = shared_prefix_length(batch) if self.share_prefix and not distributed else 0
        if not prefix:
            return model(**batch)
        if packs_attention(model):
            return forward_packed(model, batch, prefix)
        return forward_with_shared_prefix(model, batch, prefix)

    # -- evaluation ---------------------------------------------------------------------------
    def step_outputs(self, out, batch: Batch) -> dict[str, list]:
        """Summed NLL and token count of the batch (the model's loss is the token mean), so the
        loss over the split is token-weighted without touching the logits again."""
        tokens = int((batch["labels"][:, 1:] != -100).sum())
        return {"nll": [float(out.loss) * tokens], "tokens": [tokens]}

    def metrics(self, outputs: dict[str, list], labels: list[str]) -> dict[str, Any]:
        tokens = sum(outputs.get("tokens", []))
        loss = sum(outputs.get("nll", [])) / max(tokens, 1)
        return {"loss": loss, "perplexity": math.exp(min(loss, 50.0)), "tokens": tokens}

    # -- use ----------------------------------------------------------------------------------
    def prompt_style(self):
        """How prompts reach this model (``generation.prompt_ids``): the chat template and the trained system prompt."""
        from ..generation import PromptStyle

        return PromptStyle(system=self.system_prompt)

    def generate(self, model, tokenizer, prompts, **params: Any) -> list[dict[str, Any]]:
        from ..generation import generate

        params.setdefault("style", self.prompt_style())
        return generate(model, tokenizer, prompts, **params)

    def predict(self, model, tokenizer, texts: list[str], labels: list[str], *,
                max_length: int, batch_size: int) -> list[dict[str, Any]]:
        """A greedy reply per text (no ``label``: the CLI prints these as JSON lines)."""
        outs = self.generate(model, tokenizer, list(texts), batch_size=batch_size)
        return [{"text": t, "output": o["text"], "finish_reason": o["finish_reason"], "tokens": o["tokens"]}
                for t, o in zip(texts, outs)]


def _with_virtual_tokens(model, batch: Batch) -> Batch:
    """Prompt tuning puts its virtual tokens before the inputs (peft pads the labels): the mask of the
    positions whose logits are kept grows by as many never-kept positions. Prefix tuning adds keys and
    values only, so its batch is unchanged."""
    import torch

    config = model.active_peft_config
    if "logits_to_keep" not in batch or config.peft_type != "PROMPT_TUNING":  # a str enum
        return batch
    keep = batch["logits_to_keep"]
    pad = torch.zeros((keep.shape[0], config.num_virtual_tokens), dtype=keep.dtype, device=keep.device)
    return {**batch, "logits_to_keep": torch.cat((pad, keep), dim=1)}


INFO = TaskInfo("chat", ChatTask, Options, metrics=("loss", "perplexity"), tuning="lora", serving=GENERATION_SERVING)
