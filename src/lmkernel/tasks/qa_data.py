"""Extractive-QA data: SQuAD-layout JSON (SQuAD 1.1/2.0, CMRC 2018 squad-style, XQuAD) and flat JSONL.

Every question becomes one ``Example`` whose ``label`` is its gold answer texts (what the metrics
compare against; empty for an unanswerable question) and whose ``fields`` hold the question, the
context, the answer spans located in the context, the question id and the context id (``group``:
hold-out splits keep a context's questions together). An answer whose ``answer_start`` does not
point at its text is looked up in the context, the occurrence nearest the given start winning
(CMRC 2018 and translated sets have offsets off by a few characters); a question none of whose
answers can be found, or one missing its question or context, is a bad row naming the file, the
line and the question id.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..data.files import open_data, text_of, undecodable
from ..data.readers import BadRow, read_rows
from ..errors import LmkError
from .base import Example


@dataclass
class QaRead:
    examples: list[Example] = field(default_factory=list)
    bad: list[BadRow] = field(default_factory=list)
    relocated: int = 0  # answers found away from their answer_start


def is_squad_json(path: Path, fmt: str) -> bool:
    """A .json file (not forced to jsonl) is read as SQuAD layout: {"data": [{"paragraphs": [...]}]}."""
    return fmt in ("auto", "json") and path.suffix.lower() == ".json"


def read_qa(path: Path, fmt: str = "auto") -> QaRead:
    """Questions of a SQuAD-layout .json file or a flat .jsonl file (one question per line)."""
    return _read_squad(Path(path)) if is_squad_json(Path(path), fmt) else _read_flat(Path(path))


# ----------------------------------------------------------------------------------------- SQuAD JSON
def _load_json(path: Path) -> tuple[Any, str]:
    with open_data(path) as fh:
        raw = text_of(fh).read()
    problem = undecodable(raw)
    if problem:
        line = raw.count("\n", 0, re.search("[\udc80-\udcff]", raw).start()) + 1
        raise LmkError(f"{path} holds {problem}", where=f"{path} line {line}", fix="save the file as UTF-8")
    try:
        return json.loads(raw), raw
    except json.JSONDecodeError as e:
        raise LmkError(f"{path} is not valid JSON: {e.msg}", where=f"{path} line {e.lineno} column {e.colno}",
                       fix="fix the JSON, or give a .jsonl file with one question per line") from None


def _id_lines(raw: str) -> dict[str, int]:
    """Question id -> the line it is written on, so a complaint can name a line of a pretty-printed file."""
    lines: dict[str, int] = {}
    line, last = 1, 0
    for m in re.finditer(r'"id"\s*:\s*"((?:[^"\\]|\\.)*)"', raw):
        line += raw.count("\n", last, m.start())
        last = m.start()
        lines.setdefault(m.group(1), line)
    return lines


def _read_squad(path: Path) -> QaRead:
    obj, raw = _load_json(path)
    articles = obj.get("data") if isinstance(obj, dict) else None
    if not isinstance(articles, list):
        raise LmkError(f"{path} is not in SQuAD layout: expected {{\"data\": [{{\"paragraphs\": [...]}}]}}",
                       where=str(path), fix="give a SQuAD-style .json file, or a .jsonl file with question, context "
                       "and answers on each line")
    lines = _id_lines(raw)
    out = QaRead()
    for a, article in enumerate(articles):
        paragraphs = article.get("paragraphs") if isinstance(article, dict) else None
        if not isinstance(paragraphs, list):
            out.bad.append(BadRow(str(path), 1, f"data[{a}] has no paragraphs list"))
            continue
        for p, para in enumerate(paragraphs):
            group = f"{a}/{p}"
            context = para.get("context") if isinstance(para, dict) else None
            qas = para.get("qas") if isinstance(para, dict) else None
            if not isinstance(qas, list):
                out.bad.append(BadRow(str(path), 1, f"data[{a}].paragraphs[{p}] has no qas list"))
                continue
            for q, qa in enumerate(qas):
                qa = qa if isinstance(qa, dict) else {}
                qid = str(qa.get("id", f"data[{a}].paragraphs[{p}].qas[{q}]"))
                row = {**qa, "context": context}
                _add(out, path, lines.get(qid, 1), qid, group, row)
    return out


# ----------------------------------------------------------------------------------------- flat JSONL
def _read_flat(path: Path) -> QaRead:
    result = read_rows(path, ["question", "context"], "jsonl")
    out = QaRead(bad=list(result.bad))
    for row in result.rows:
        qid = str(row.fields.get("id", f"line {row.line}"))
        context = row.fields.get("context")
        _add(out, path, row.line, qid, str(context) if isinstance(context, str) else None, row.fields)
    out.bad.sort(key=lambda b: b.line)
    return out


# ----------------------------------------------------------------------------------------- one question
def _add(out: QaRead, path: Path, line: int, qid: str, group: str | None, row: dict[str, Any]) -> None:
    def bad(reason: str) -> None:
        out.bad.append(BadRow(str(path), line, f"question {qid}: {reason}"))

    question, context = row.get("question"), row.get("context")
    if not isinstance(question, str) or not question.strip():
        return bad("missing or empty question")
    if not isinstance(context, str) or not context.strip():
        return bad("missing or empty context")
    if "answers" not in row and not row.get("is_impossible"):
        return bad("no answers (write \"answers\": [] and \"is_impossible\": true for an unanswerable question)")
    answers = _answers(row.get("answers"))
    if answers is None:
        return bad(f"answers must be a list of {{text, answer_start}} (or of strings), got {str(row['answers'])[:80]}")
    impossible = bool(row.get("is_impossible")) or not answers
    spans: list[tuple[int, int]] = []
    for text, start in ([] if impossible else answers):
        found = locate(context, text, start)
        if found is not None:
            out.relocated += found[0] != start and start is not None
            spans.append(found)
    if not impossible and not spans:
        text, start = answers[0]
        return bad(f"answer {text!r} is not in the context" + (f" (answer_start {start} shows "
                   f"{context[start:start + len(text)]!r})" if isinstance(start, int) else ""))
    golds = [] if impossible else [t for t, _ in answers]
    out.examples.append(Example(f"{question.strip()} {context}", golds, str(path), line,
                                {"question": question.strip(), "context": context, "spans": spans, "id": qid,
                                 "group": group if group is not None else context}))


def _answers(value: Any) -> list[tuple[str, int | None]] | None:
    """(text, start) pairs from a list of {text, answer_start}, a {"text": [...], "answer_start": [...]}
    dict (Hugging Face datasets), a list of strings or one string; None when it is none of these."""
    if value is None:
        return []
    if isinstance(value, str):
        return [(value, None)]
    if isinstance(value, dict) and isinstance(value.get("text"), list):
        starts = value.get("answer_start") or [None] * len(value["text"])
        value = [{"text": t, "answer_start": s} for t, s in zip(value["text"], starts)]
    if not isinstance(value, list):
        return None
    out: list[tuple[str, int | None]] = []
    for a in value:
        if isinstance(a, str):
            out.append((a, None))
        elif isinstance(a, dict) and isinstance(a.get("text"), str):
            start = a.get("answer_start")
            out.append((a["text"], start if isinstance(start, int) and not isinstance(start, bool) else None))
        else:
            return None
    return [(t, s) for t, s in out if t.strip()]


def locate(context: str, text: str, start: int | None) -> tuple[int, int] | None:
    """(start, end) character span of ``text`` in ``context``: at ``start`` when it is there, else the
    occurrence nearest ``start`` (the first without one); the text stripped of outer spaces if needed."""
    for t in dict.fromkeys((text, text.strip())):
        if not t:
            continue
        if start is not None and context[start:start + len(t)] == t:
            return start, start + len(t)
        hits = [m.start() for m in re.finditer(re.escape(t), context)]
        if hits:
            at = min(hits, key=lambda h: abs(h - start)) if start is not None else hits[0]
            return at, at + len(t)
    return None


# ----------------------------------------------------------------------------------------- predict inputs
def predict_inputs(questions: list[str], contexts: list[str], path: Path | None) -> list[dict[str, str]]:
    """{"question", "context"} items for ``lmkernel predict``: each --question with the one --context (or
    with the --context at its position when as many are given), then the questions of ``path`` (a .jsonl
    of question/context rows, or a SQuAD-layout .json).

    Raises:
        LmkError: questions without contexts (or the reverse), or counts that do not pair up.
    """
    if questions and len(contexts) not in (1, len(questions)):
        raise LmkError(f"{len(questions)} --question but {len(contexts)} --context", where="predict",
                       fix="give one --context for all questions, or one per --question in the same order")
    if contexts and not questions:
        raise LmkError("--context without --question", where="predict", fix='add --question "..."')
    items = [{"question": q, "context": contexts[0] if len(contexts) == 1 else contexts[i]}
             for i, q in enumerate(questions)]
    if path is not None:
        if is_squad_json(Path(path), "auto"):
            read = _read_squad(Path(path))
        else:
            result = read_rows(path, ["question", "context"], "jsonl")
            read = QaRead(bad=list(result.bad))
            for row in result.rows:
                _add(read, Path(path), row.line, str(row.fields.get("id", row.line)), None,
                     {"answers": [], **row.fields, "is_impossible": True})
        if read.bad:
            b = read.bad[0]
            raise LmkError(f"bad row in {path}: {b.reason}", where=f"{b.file} line {b.line}",
                           fix="fix or remove the row")
        items += [{"question": e.fields["question"], "context": e.fields["context"]} for e in read.examples]
    return items
