"""Answers grounded in a knowledge index: retrieve, decide whether the passages can answer, prompt, cite.

One path for ``lmkernel ask``, ``ask()`` from Python and the server's grounded chat completions, so the
three give the same answer: ``prepare`` retrieves the top passages for a question and either builds the
numbered-passage prompt or decides, below the score threshold, that the index does not know (no model
is called then); ``finish`` maps the ``[n]`` markers the model's answer uses to the passages' chunk ids.
With an extractive QA model (a run of the ``qa`` task) the answer is the best span over the passages.

The threshold compares the best dense cosine among the retrieved passages (``Hit.dense``), not the fused
score: a reciprocal-rank-fusion score says how a passage ranks, not whether anything relevant was found.
When no passage carries a cosine (``mode="bm25"``) only an empty result means "not known".
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import LmkError
from .settings import language  # one notion of a text's language for the index and the answers

DEFAULT_K = 4  # passages given to the model
DEFAULT_MIN_SCORE = 0.4  # best dense cosine below which the answer is "not known" (docs/serving.md: the trade)
PASSAGE_CHARS = 1200  # a passage is cut to this many characters in the prompt
MAX_K = 50
MODES = ("hybrid", "dense", "bm25")

_MARK = re.compile(r"[\[【［]\s*(\d{1,3}(?:\s*[,，、;]\s*\d{1,3})*)\s*[\]】］]")  # [1], [1, 3], 【2】, ［2］

DONT_KNOW = {"en": "I don't know: the knowledge base has nothing on this question.",
             "zh": "抱歉，知识库中没有找到与这个问题相关的信息，我无法回答。"}
_INSTRUCTIONS = {
    "en": ("Answer the question using only the numbered passages below. Cite every passage you use by its "
           "number in square brackets, like [1]. If the passages do not contain the answer, say that you do "
           "not know.", "Passages:", "Question:"),
    "zh": ("请只根据下面编号的资料回答问题，并用方括号标注所依据资料的编号，例如 [1]。"
           "如果资料中没有答案，请说明你不知道。",
           "资料：", "问题："),
}


def dont_know(question: str) -> str:
    """The "not known" reply, in the question's language."""
    return DONT_KNOW[language(question)]


@dataclass
class Citation:
    index: int  # the [n] the answer used
    chunk_id: str
    source: str
    text: str
    doc_id: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"index": self.index, "chunk_id": self.chunk_id, "source": self.source, "text": self.text,
                "doc_id": self.doc_id}


@dataclass
class Grounding:
    """A question with its retrieved passages, ready to be answered (``messages``) or known to be unanswerable."""

    question: str
    hits: list[Any]  # lmkernel.knowledge.index.Hit, best first; the prompt numbers them from 1
    best: float | None  # the best dense cosine (None: no passage carries one)
    known: bool  # False: below the threshold (or nothing found): answer ``dont_know`` without a model
    messages: list[dict[str, str]] = field(default_factory=list)


@dataclass
class Answer:
    question: str
    answer: str
    citations: list[Citation]
    grounded: bool  # False: the "don't know" reply, no model was called
    best_score: float | None
    hits: list[Any] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"question": self.question, "answer": self.answer, "grounded": self.grounded,
                "best_score": self.best_score, "citations": [c.to_json() for c in self.citations],
                "passages": [h.to_json() for h in self.hits]}


def check_query(question: Any, k: int, mode: str = "hybrid") -> str:
    """The question stripped; refuses an empty one, k outside 1..MAX_K and an unknown mode."""
    if not isinstance(question, str) or not question.strip():
        raise LmkError("the question is empty", where="question", fix="ask a question with some words in it")
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= MAX_K:
        raise LmkError(f"k must be between 1 and {MAX_K}, got {k!r}", where="k", fix=f"pass --k 1 to {MAX_K}")
    if mode not in MODES:
        raise LmkError(f"unknown search mode {mode!r}", where="mode", fix="use one of: " + ", ".join(MODES))
    return question.strip()


def best_score(hits: Sequence[Any]) -> float | None:
    dense = [h.dense for h in hits if getattr(h, "dense", None) is not None]
    return max(dense) if dense else None


def build_messages(question: str, hits: Sequence[Any], history: Sequence[dict[str, str]] = ()) -> list[dict[str, str]]:
    """The chat to send: ``history`` (earlier turns, kept as they are), then one user turn holding the
    instructions, the passages numbered from [1] (each cut to PASSAGE_CHARS) and the question."""
    rules, passages, asked = _INSTRUCTIONS[language(question)]
    numbered = "\n\n".join(f"[{i}] {_clip(h.text)}" for i, h in enumerate(hits, 1))
    turn = f"{rules}\n\n{passages}\n{numbered}\n\n{asked} {question}"
    return [*history, {"role": "user", "content": turn}]


PLAIN_STOPS = ("\nQuestion:", "\n问题：", "\nPassages:", "\n资料：")  # a plain LM goes on with a next question


def plain_prompt(messages: Sequence[dict[str, str]]) -> str:
    """The chat as text to continue, for a model without a chat template: the turns' text, then "Answer:"."""
    cue = "答案：" if language(messages[-1]["content"].rsplit("\n", 1)[-1]) == "zh" else "Answer:"
    return "\n\n".join(m["content"] for m in messages) + "\n\n" + cue


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= PASSAGE_CHARS else text[:PASSAGE_CHARS].rstrip() + "…"


def cite(answer: str, hits: Sequence[Any]) -> list[Citation]:
    """The passages the answer's ``[n]`` markers name, in order of first use; numbers with no passage are
    ignored (a model may invent them)."""
    seen: list[int] = []
    for m in _MARK.finditer(answer):
        for n in re.split(r"[^\d]+", m.group(1)):
            if n and 1 <= int(n) <= len(hits) and int(n) not in seen:
                seen.append(int(n))
    return [_citation(i, hits[i - 1]) for i in seen]


def _citation(i: int, hit: Any) -> Citation:
    return Citation(index=i, chunk_id=hit.chunk_id, source=hit.source, text=hit.text, doc_id=hit.doc_id)


def prepare(index: Any, question: str, *, k: int = DEFAULT_K, min_score: float = DEFAULT_MIN_SCORE,
            min_bm25: float | None = None, filters: dict | None = None, mode: str = "hybrid",
            history: Sequence[dict[str, str]] = (),
            fits: Callable[[list[dict[str, str]]], bool] | None = None) -> Grounding:
    """Retrieve the top ``k`` passages and build the prompt, or decide the index does not know.

    ``fits(messages)`` says whether a prompt fits the model's context; passages are dropped from the
    end until it does.

    Raises:
        LmkError: an empty question, k out of range, an unknown mode; not even one passage fits (``where="context"``).
    """
    question = check_query(question, k, mode)
    hits = list(index.search(question, k=k, filters=filters, mode=mode))
    best = best_score(hits)
    if not hits or (best is not None and best < min_score) or below_bm25(hits, min_bm25):
        return Grounding(question, hits, best, known=False)
    while hits:
        messages = build_messages(question, hits, history)
        if fits is None or fits(messages):
            return Grounding(question, hits, best, known=True, messages=messages)
        hits = hits[:-1]
    raise LmkError("the question with even one passage is longer than the model's context", where="context",
                   fix="ask a shorter question, or use a model with a longer context")


def below_bm25(hits: Sequence[Any], min_bm25: float | None) -> bool:
    """Whether the best BM25 score is under ``min_bm25`` (None: no BM25 threshold; hits without BM25 pass)."""
    scores = [h.bm25 for h in hits if getattr(h, "bm25", None) is not None]
    return min_bm25 is not None and bool(scores) and max(scores) < min_bm25


def finish(grounding: Grounding, text: str) -> Answer:
    """The model's answer to a prepared question, with its ``[n]`` markers mapped to passages."""
    if not grounding.known:
        return Answer(grounding.question, dont_know(grounding.question), [], False, grounding.best, grounding.hits)
    return Answer(grounding.question, text, cite(text, grounding.hits), True, grounding.best, grounding.hits)


def extract(grounding: Grounding, qa: Any) -> Answer:
    """The best answer span over the passages from an extractive QA model (``predict([{"question",
    "context"}])`` -> ``[{"answer", "score", ...}]``), cited; no span anywhere: not known."""
    if not grounding.known:
        return finish(grounding, "")
    rows = qa.predict([{"question": grounding.question, "context": h.text} for h in grounding.hits])
    scored = [(float(r.get("score") or 0.0), i, r) for i, r in enumerate(rows) if (r.get("answer") or "").strip()]
    if not scored:
        return Answer(grounding.question, dont_know(grounding.question), [], False, grounding.best, grounding.hits)
    _, i, row = max(scored, key=lambda t: (t[0], -t[1]))
    return Answer(grounding.question, f"{row['answer'].strip()} [{i + 1}]", [_citation(i + 1, grounding.hits[i])],
                  True, grounding.best, grounding.hits)


def ask(index: Any, question: str, *, generator: Any = None, qa: Any = None, k: int = DEFAULT_K,
        min_score: float = DEFAULT_MIN_SCORE, min_bm25: float | None = None, filters: dict | None = None,
        mode: str = "hybrid", max_new_tokens: int = 256) -> Answer:
    """Answer ``question`` from the index (a path or an opened ``Index``) with a chat model (``generator``: a run,
    an alias such as ``smollm2``, a loaded model, or a callable ``messages -> text``) or an extractive QA
    model (``qa``: a ``qa`` run or a loaded one). Greedy, so the CLI, Python and the server agree.

    Raises:
        LmkError: neither or both models given, an empty question, k out of range, a missing index.
    """
    if (generator is None) == (qa is None):
        raise LmkError("give exactly one of a generator (chat model) and a QA model", where="ask",
                       fix="pass --generator RUN|NAME or --qa RUN")
    if isinstance(index, (str, Path)):
        from .index import open_index

        index = open_index(index)
    if qa is not None:
        qa = load_qa(qa) if isinstance(qa, (str, Path)) else qa
        return extract(prepare(index, question, k=k, min_score=min_score, min_bm25=min_bm25, filters=filters,
                               mode=mode), qa)
    generator = _load_generator(generator) if isinstance(generator, (str, Path)) else generator
    reply, fits = reply_fn(generator, max_new_tokens)
    grounding = prepare(index, question, k=k, min_score=min_score, min_bm25=min_bm25, filters=filters, mode=mode,
                        fits=fits)
    return finish(grounding, reply(grounding.messages) if grounding.known else "")


def reply_fn(generator: Any, max_new_tokens: int) -> tuple[Callable[[list[dict]], str], Callable | None]:
    """(messages -> greedy answer, messages -> fits the context) for a loaded model or a plain callable."""
    if not hasattr(generator, "generate"):
        return generator, None
    from ..generation import has_chat_template, prompt_ids

    chat = generator.prompt_style.chat and has_chat_template(generator.tokenizer)

    def prompt(messages: list[dict]) -> dict[str, Any]:  # a model without a chat template continues plain text
        return {"prompts": messages} if chat else {"prompts": plain_prompt(messages), "raw": True,
                                                   "stop": PLAIN_STOPS}

    def reply(messages: list[dict]) -> str:
        return generator.generate(**prompt(messages), max_new_tokens=max_new_tokens, temperature=0.0)[0]["text"]

    def fits(messages: list[dict]) -> bool:
        context = getattr(getattr(generator.model, "config", None), "max_position_embeddings", None)
        if not context:
            return True
        p = prompt(messages)
        ids = prompt_ids(generator.tokenizer, None if chat else p["prompts"], messages=p["prompts"] if chat else None,
                         raw=not chat, style=generator.prompt_style)  # the stops are not part of the prompt
        return len(ids) + min(max_new_tokens, context // 4) <= context

    return reply, fits


def _load_generator(ref: str | Path) -> Any:
    from ..artifact import load_generator

    return load_generator(ref)


def load_qa(ref: str | Path) -> Any:
    from ..artifact import load

    model = load(ref)
    if model.card.get("task") != "qa":
        raise LmkError(f"{ref} is a {model.card.get('task')} run, not an extractive QA model", where="--qa",
                       fix="pass a run of the qa task, or a chat model with --generator")
    return model
