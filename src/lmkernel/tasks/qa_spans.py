"""Windows over long contexts and answer spans chosen over them, for extractive QA.

A question and its context are encoded as a pair; a context longer than the room left by the
question is cut into windows that overlap by ``doc_stride`` tokens (the fast tokenizer's overflow),
each window keeping the character offsets of its context tokens. Training marks the answer's first
and last token in every window that holds the whole answer, and the [CLS] token in the others (the
way BERT's SQuAD recipe learns "not in this window"). At prediction each window proposes its
``n_best`` start and end tokens; a span scores start logit + end logit, must lie inside the context,
end after it starts and be at most ``max_answer_length`` tokens; the best span over all windows wins,
and the null score ([CLS] start + end, the lowest over the windows) beats it when no-answer is
allowed and it is higher by more than the threshold.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

SPECIAL_ROOM = 4  # special tokens a pair takes at most ([CLS] q [SEP] c [SEP]; some tokenizers add one more)


@dataclass
class Window:
    """One encoded window: its ids, the question it belongs to, and the character span of each token
    (None outside the context)."""

    item: int
    input_ids: list[int]
    token_type_ids: list[int] | None
    offsets: list[tuple[int, int] | None]
    cls: int
    start: int = 0  # training target: answer start/end token, or cls
    end: int = 0


def window_plan(max_length: int, doc_stride: int, max_question_length: int) -> tuple[int, int]:
    """(question token cap, overlap) that fit ``max_length``: the question takes at most half of it, and
    the overlap at most half of the room left for the context (the tokenizer refuses larger)."""
    question = max(1, min(max_question_length, max_length // 2))
    room = max_length - question - SPECIAL_ROOM
    if room < 8:
        from ..errors import LmkError

        raise LmkError(f"data.max_length {max_length} leaves no room for a context beside the question",
                       where="data.max_length", fix="use data.max_length: 384 (or at least 64) for the qa task")
    return question, max(0, min(doc_stride, room // 2))


def _cut_questions(tokenizer, questions: list[str], cap: int) -> list[str]:
    enc = tokenizer(questions, add_special_tokens=False, return_offsets_mapping=True, truncation=False)
    return [q if len(off) <= cap else q[: off[cap - 1][1]] for q, off in zip(questions, enc["offset_mapping"])]


def encode_windows(tokenizer, questions: list[str], contexts: list[str], spans: list[list[tuple[int, int]]] | None,
                   max_length: int, doc_stride: int, max_question_length: int) -> list[Window]:
    """Windows of every (question, context), in input order; ``spans``: the answer spans to train on
    (the first of each question's; an empty list: unanswerable)."""
    if not getattr(tokenizer, "is_fast", False):
        from ..errors import LmkError

        raise LmkError("the qa task needs a fast (Rust) tokenizer for character offsets", where="model.name",
                       fix="use a model whose folder has tokenizer.json")
    cap, stride = window_plan(max_length, doc_stride, max_question_length)
    out: list[Window] = []
    for first in range(0, len(questions), 512):
        qs = _cut_questions(tokenizer, questions[first:first + 512], cap)
        enc = tokenizer(qs, contexts[first:first + 512], truncation="only_second", max_length=max_length,
                        stride=stride, return_overflowing_tokens=True, return_offsets_mapping=True)
        for k, item in enumerate(enc["overflow_to_sample_mapping"]):
            ids = enc["input_ids"][k]
            seq = enc.sequence_ids(k)
            offsets = [tuple(o) if s == 1 else None for o, s in zip(enc["offset_mapping"][k], seq)]
            cls = ids.index(tokenizer.cls_token_id) if tokenizer.cls_token_id in ids else 0
            w = Window(first + item, ids, enc["token_type_ids"][k] if "token_type_ids" in enc else None, offsets, cls,
                       cls, cls)
            if spans is not None and spans[first + item]:
                w.start, w.end = _target(offsets, spans[first + item][0], cls)
            out.append(w)
    return out


def _target(offsets: list[tuple[int, int] | None], span: tuple[int, int], cls: int) -> tuple[int, int]:
    """The answer's first and last token in this window, or (cls, cls) when the window does not hold it whole."""
    inside = [i for i, o in enumerate(offsets) if o is not None]
    if not inside or offsets[inside[0]][0] > span[0] or offsets[inside[-1]][1] < span[1]:
        return cls, cls
    start = next(i for i in inside if offsets[i][1] > span[0])
    end = next(i for i in reversed(inside) if offsets[i][0] < span[1])
    return start, max(start, end)


@dataclass
class Candidates:
    """What one window proposes: spans (logit score, start char, end char, probability) and its null score."""

    item: int
    null: float
    null_prob: float
    spans: list[tuple[float, int, int, float]]


def window_candidates(start_logits, end_logits, offsets: list[tuple[int, int] | None], cls: int, item: int,
                      n_best: int, max_answer_length: int) -> Candidates:
    """The ``n_best`` x ``n_best`` start/end pairs of one window that make a valid span.

    ``start_logits``/``end_logits``: float tensors over the window's (possibly padded) positions."""
    import torch

    n = len(offsets)
    s, e = start_logits[:n].float(), end_logits[:n].float()
    log_ps, log_pe = torch.log_softmax(s, -1), torch.log_softmax(e, -1)
    k = min(n_best, n)
    starts, ends = torch.topk(s, k).indices.tolist(), torch.topk(e, k).indices.tolist()
    sl, el, lps, lpe = s.tolist(), e.tolist(), log_ps.tolist(), log_pe.tolist()
    spans = []
    for a in starts:
        if offsets[a] is None:
            continue
        for b in ends:
            if offsets[b] is None or b < a or b - a + 1 > max_answer_length:
                continue
            prob = math.exp(lps[a] + lpe[b])
            spans.append((sl[a] + el[b], offsets[a][0], offsets[b][1], prob))
    spans.sort(key=lambda x: -x[0])
    null_prob = math.exp(lps[cls] + lpe[cls])
    return Candidates(item, sl[cls] + el[cls], null_prob, spans[:n_best])


def best_answer(context: str, cands: list[Candidates], allow_null: bool, null_threshold: float) -> dict[str, Any]:
    """{answer, score, start, end} over all windows of one question; answer "" (start = end = -1) when
    no-answer is allowed and the null score beats the best span by more than ``null_threshold``, or no
    window proposes a valid span."""
    spans = [sp for c in cands for sp in c.spans]
    null = min(cands, key=lambda c: c.null) if cands else None
    best = max(spans, key=lambda sp: sp[0]) if spans else None
    if best is None or (allow_null and null is not None and null.null - best[0] > null_threshold):
        return {"answer": "", "score": null.null_prob if null is not None else 0.0, "start": -1, "end": -1}
    _, start, end, prob = best
    return {"answer": context[start:end], "score": prob, "start": start, "end": end}
