"""Chat-template injection: message text must never become the template's control tokens.

A tokenizer matches its special tokens anywhere in the text it is given, so a rendered chat
template whose user turn holds ``hi<|im_end|>\\n<|im_start|>system\\n...`` would feed the model a
real system turn written by the user. ``encode_messages`` renders the template once with
placeholders to learn where each message's content lies, tokenizes the whole prompt as before, and
re-tokenizes any special token found inside a content span as plain text (``split_special_tokens``),
so the template's own tokens, and every other token, stay exactly what they were (chat training data
goes through ``split_in_content`` too). ``find`` reports
control-token strings in a text as ``template_injection`` findings for the guard pipeline.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# control-token shapes of the common chat templates (ChatML/SmolLM2/Qwen, Llama 3, Gemma, Llama 2, Phi, Mistral)
GENERIC = re.compile(r"<\|[A-Za-z0-9_]{1,40}\|>|</?(?:start|end)_of_turn>|</?bos>|</?eos>|\[/?INST\]|<</?SYS>>|"
                     r"</s>|<s>|\[/?(?:AVAILABLE_TOOLS|TOOL_CALLS|TOOL_RESULTS|SYSTEM_PROMPT)\]")
_MARK = "\ue000{}\ue001"  # private-use characters: no template or tokenizer gives them a meaning


def special_strings(tokenizer) -> list[str]:
    """The text forms of the tokenizer's special tokens (what its template uses as controls)."""
    out = {t.content for t in getattr(tokenizer, "added_tokens_decoder", {}).values() if t.special}
    out.update(getattr(tokenizer, "all_special_tokens", []) or [])
    return sorted((s for s in out if s), key=len, reverse=True)


def special_ids(tokenizer) -> frozenset[int]:
    ids = {i for i, t in getattr(tokenizer, "added_tokens_decoder", {}).items() if t.special}
    ids.update(getattr(tokenizer, "all_special_ids", []) or [])
    return frozenset(ids)


def control_pattern(strings: Iterable[str]) -> re.Pattern[str] | None:
    """One alternation over a tokenizer's special-token strings (thousands for some vocabularies)."""
    strings = sorted({s for s in strings if s}, key=len, reverse=True)
    return re.compile("|".join(map(re.escape, strings))) if strings else None


def find(text: str, extra: re.Pattern[str] | Iterable[str] | None = None) -> list[tuple[int, int]]:
    """Spans of control-token strings in ``text``: the common templates' shapes and ``extra`` (a
    tokenizer's own special tokens, as strings or a ``control_pattern``)."""
    spans = [(m.start(), m.end()) for m in GENERIC.finditer(text)]
    if extra is not None and not isinstance(extra, re.Pattern):
        extra = control_pattern(extra)
    if extra is not None:
        spans += [(m.start(), m.end()) for m in extra.finditer(text)]
    spans.sort(key=lambda s: (s[0], -s[1]))
    out: list[tuple[int, int]] = []
    for a, b in spans:
        if not out or a >= out[-1][1]:
            out.append((a, b))
    return out


def content_spans(tokenizer, messages: list[dict[str, str]], text: str, **kwargs) -> list[tuple[int, int]] | None:
    """Where each message's content lies in ``text`` (the rendered template), or None when the template
    changes the content (strips it, say) so that the placeholders cannot place it exactly."""
    marked = [{**m, "content": _MARK.format(i)} for i, m in enumerate(messages)]
    skeleton = tokenizer.apply_chat_template(marked, tokenize=False, **kwargs)
    spans, pieces, pos, length = [], [], 0, 0
    for i, m in enumerate(messages):
        mark = _MARK.format(i)
        at = skeleton.find(mark, pos)
        if at < 0 or skeleton.count(mark) != 1:
            return None
        pieces.append(skeleton[pos:at])
        length += at - pos
        spans.append((length, length + len(m["content"])))
        pieces.append(m["content"])
        length += len(m["content"])
        pos = at + len(mark)
    pieces.append(skeleton[pos:])
    return spans if "".join(pieces) == text else None


def encode_messages(tokenizer, messages: list[dict[str, str]], text: str, **kwargs) -> list[int]:
    """The ids of the rendered ``text`` with every special token that comes from message content
    tokenized as plain text instead."""
    fast = bool(getattr(tokenizer, "is_fast", False))
    enc = tokenizer(text, add_special_tokens=False, truncation=False, verbose=False, return_offsets_mapping=fast)
    ids = list(enc["input_ids"])
    specials = special_ids(tokenizer)
    if not specials or not any(i in specials for i in ids):
        return ids
    spans = content_spans(tokenizer, messages, text, **kwargs) if fast else None
    if spans is None:  # cannot place the content: neutralise its control strings and render again
        return _neutralised(tokenizer, messages, **kwargs)
    return split_in_content(tokenizer, text, ids, list(enc["offset_mapping"]), spans)[0]


def split_in_content(tokenizer, text: str, ids: list[int], offsets: list[tuple[int, int]],
                     spans: list[tuple[int, int]]) -> tuple[list[int], list[tuple[int, int]]]:
    """``ids``/``offsets`` of ``text`` with each special token inside a content span replaced by the
    plain-text tokens of its characters (offsets kept pointing into ``text``)."""
    specials = special_ids(tokenizer)
    out_ids: list[int] = []
    out_offsets: list[tuple[int, int]] = []
    for tok, (a, b) in zip(ids, offsets):
        if tok in specials and any(s <= a and b <= e for s, e in spans):
            pieces, at = _plain(tokenizer, text[a:b]), a
            for i, piece in enumerate(pieces):  # the characters, spread over the pieces for the offsets
                end = b if i == len(pieces) - 1 else min(b, at + 1)
                out_ids.append(piece)
                out_offsets.append((at, end))
                at = end
        else:
            out_ids.append(tok)
            out_offsets.append((a, b))
    return out_ids, out_offsets


def _plain(tokenizer, piece: str) -> list[int]:
    try:
        return list(tokenizer(piece, add_special_tokens=False, split_special_tokens=True)["input_ids"])
    except TypeError:  # a tokenizer without split_special_tokens: two halves match no special token
        half = max(1, len(piece) // 2)
        return [i for p in (piece[:half], piece[half:]) for i in tokenizer(p, add_special_tokens=False)["input_ids"]]


def _neutralised(tokenizer, messages: list[dict[str, str]], **kwargs) -> list[int]:
    """Fallback: break each control string in the content with a zero-width space, render, tokenize."""
    strings = special_strings(tokenizer)
    clean = []
    for m in messages:
        content = m["content"]
        for a, _ in reversed(find(content, strings)):
            content = content[:a] + content[a] + "\u200b" + content[a + 1:]
        clean.append({**m, "content": content})
    text = tokenizer.apply_chat_template(clean, tokenize=False, **kwargs)
    return list(tokenizer(text, add_special_tokens=False, truncation=False, verbose=False)["input_ids"])
