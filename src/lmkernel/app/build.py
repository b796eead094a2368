"""Build an application directory from its spec, and measure the application on held-out questions.

``build_app`` trains the intent classifier (when the spec gives a model spec), indexes the documents and
writes ``app.json`` last, so a directory with an ``app.json`` is always complete. ``evaluate_app`` replays
held-out questions through the same ``SupportBot.respond`` that ``app ask`` and ``app serve`` use.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import LmkError
from .spec import AppSpec, app_dir
from .support import SupportBot, write_app

THRESHOLDS = (0.0, 0.2, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7)


@dataclass
class BuiltApp:
    path: Path
    built: dict[str, Any]
    evaluation: dict[str, Any] | None


def build_app(spec: AppSpec, log: Callable[[str], None] = print, progress: bool = True) -> BuiltApp:
    """Every part of the application under its directory: intents/ (trained), index/, app.json."""
    from ..knowledge.index import build_index

    path = app_dir(spec)
    path.mkdir(parents=True, exist_ok=True)
    (path / "app.json").unlink(missing_ok=True)  # incomplete until rewritten at the end
    built: dict[str, Any] = {"started": time.strftime("%Y-%m-%dT%H:%M:%S")}
    if spec.intents is not None and spec.intents.spec is not None:
        from .. import run as run_spec  # the public entry point: an application is built on top of runs

        log(f"training the intent classifier from {spec.intents.spec} ...")
        shutil.rmtree(path / "intents", ignore_errors=True)
        result = run_spec(spec.intents.spec, [f"output.dir={path / 'intents'}"], progress=progress)
        built["intents"] = {"run": str(result.run_dir), "metrics": result.metrics.get("validation")}
    log(f"indexing {len(spec.knowledge.docs)} document source(s) ...")
    shutil.rmtree(path / "index", ignore_errors=True)
    stats = build_index([str(d) for d in spec.knowledge.docs], path / "index", model=spec.knowledge.model,
                        text_field=spec.knowledge.text_field, id_field=spec.knowledge.id_field, progress=progress)
    built["index"] = _plain(stats)
    write_app(path, spec, built)
    evaluation = None
    if spec.eval.data is not None:
        evaluation = evaluate_app(path, spec.eval.data, progress=progress)
    return BuiltApp(path, built, evaluation)


def _plain(obj: Any) -> Any:
    """A JSON-able view of a stats object (dataclass, dict or other)."""
    from dataclasses import asdict, is_dataclass

    if is_dataclass(obj):
        return json.loads(json.dumps(asdict(obj), default=str))
    return json.loads(json.dumps(obj, default=str))


def read_heldout(file: Path) -> list[dict[str, Any]]:
    """Held-out questions: JSONL lines with ``question``, ``expect`` (a document id or null), ``contains``; or
    ``handoff: true`` for a message that must go to a person."""
    rows = []
    try:
        lines = Path(file).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise LmkError(f"cannot read the held-out questions {file}: {e}", where=str(file),
                       fix="pass a UTF-8 .jsonl file") from None
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise LmkError(f"line {n} is not JSON: {e.msg}", where=f"{file}:{n}",
                           fix="one JSON object per line") from None
        if not isinstance(row, dict) or not isinstance(row.get("question"), str) or not row["question"].strip():
            raise LmkError(f"line {n} has no question", where=f"{file}:{n}",
                           fix='write {"question": "...", "expect": "doc-id" or null, "contains": "..."}')
        rows.append(row)
    if not rows:
        raise LmkError(f"{file} holds no questions", where=str(file), fix="add one JSON object per line")
    return rows


def _judge(row: dict[str, Any], reply: Any) -> dict[str, Any]:
    expect, contains = row.get("expect"), row.get("contains")
    cited = [c["doc_id"] for c in reply.citations]
    if row.get("handoff"):  # the customer asks for a person: only a hand-off is right
        correct = reply.kind == "handoff"
    elif expect is None:
        correct = reply.kind != "answer"
    else:
        correct = reply.kind == "answer" and (not contains or contains in reply.text)
    return {"question": row["question"], "expect": "(hand-off)" if row.get("handoff") else expect,
            "handoff": bool(row.get("handoff")), "kind": reply.kind, "correct": correct,
            "score": reply.score, "intent": reply.intent, "cited": cited, "answer": reply.text,
            "cited_right": sum(d == expect for d in cited), "top": cited[0] if cited else None}


def evaluate_app(path: Path, heldout: Path, progress: bool = True) -> dict[str, Any]:
    """Answer accuracy (a fact the answer must contain / declining when nothing answers), citation precision,
    hand-off share, and how accuracy moves with ``answer.min_score``; written to eval.json and eval.md."""
    from tqdm import tqdm

    bot = SupportBot.load(path)
    rows = read_heldout(heldout)
    found = [bot.retrieve(row["question"]) for row in tqdm(rows, disable=not progress, desc="eval")]
    judged = [_judge(row, bot.decide(r)) for row, r in zip(rows, found)]
    result = summarize(judged, bot.spec.answer.min_score)
    result["sweep"] = _sweep(bot, rows, found)
    from ..fsutil import atomic_write_json, atomic_write_text

    atomic_write_json(Path(path) / "eval.json", {**result, "replies": judged})
    atomic_write_text(Path(path) / "eval.md", eval_markdown(result, judged))
    return result


def summarize(judged: list[dict[str, Any]], min_score: float) -> dict[str, Any]:
    handoffs = [j for j in judged if j.get("handoff")]
    answerable = [j for j in judged if j["expect"] is not None and not j.get("handoff")]
    unanswerable = [j for j in judged if j["expect"] is None]
    cited = sum(len(j["cited"]) for j in answerable)
    return {
        "questions": len(judged),
        "accuracy": sum(j["correct"] for j in judged) / len(judged),
        "answered_correctly": sum(j["correct"] for j in answerable) / max(1, len(answerable)),
        "declined_correctly": sum(j["correct"] for j in unanswerable) / max(1, len(unanswerable)),
        "citation_precision": sum(j["cited_right"] for j in answerable) / cited if cited else None,
        "handed_off_correctly": sum(j["correct"] for j in handoffs) / len(handoffs) if handoffs else None,
        "handoff_share": sum(j["kind"] == "handoff" for j in judged) / len(judged),
        "min_score": min_score,
    }


def _sweep(bot: SupportBot, rows: list[dict[str, Any]], found: list[Any]) -> list[dict[str, Any]]:
    """Accuracy at other ``min_score`` values: the same retrieved messages decided at each threshold."""
    out = []
    for t in THRESHOLDS:
        s = summarize([_judge(row, bot.decide(r, t)) for row, r in zip(rows, found)], t)
        out.append({k: s[k] for k in ("min_score", "accuracy", "answered_correctly", "declined_correctly")})
    return out


def eval_markdown(result: dict[str, Any], judged: list[dict[str, Any]]) -> str:
    def pct(x: float | None) -> str:
        return "n/a" if x is None else f"{100 * x:.1f} %"

    lines = ["# Application evaluation", "",
             f"{result['questions']} held-out questions, `answer.min_score` = {result['min_score']}.", "",
             "| measure | value |", "|---|---|",
             f"| accuracy (answered with the fact, or declined when nothing answers) | {pct(result['accuracy'])} |",
             f"| answerable questions answered correctly | {pct(result['answered_correctly'])} |",
             f"| unanswerable questions declined | {pct(result['declined_correctly'])} |",
             f"| citation precision (cited documents that answer the question) | "
             f"{pct(result['citation_precision'])} |",
             f"| requests for a person handed off | {pct(result['handed_off_correctly'])} |",
             f"| all replies handed off to a person | {pct(result['handoff_share'])} |", "",
             "## Threshold", "", "| min_score | accuracy | answered correctly | declined correctly |",
             "|---|---|---|---|"]
    lines += [f"| {s['min_score']} | {pct(s['accuracy'])} | {pct(s['answered_correctly'])} | "
              f"{pct(s['declined_correctly'])} |" for s in result.get("sweep", [])]
    wrong = [j for j in judged if not j["correct"]]
    lines += ["", f"## Wrong replies ({len(wrong)})", "", "| question | expected | reply | top cited | score |",
              "|---|---|---|---|---|"]
    for j in wrong:
        score = "" if j["score"] is None else f"{j['score']:.3f}"
        lines.append(f"| {j['question']} | {j['expect']} | {j['kind']} | {j['top']} | {score} |")
    return "\n".join(lines) + "\n"
