"""The error-analysis outputs of an evaluation: errors.csv / errors.jsonl, the reliability plot and
the report sections (warnings, slices, calibration, the most confident errors).

``explain_fn`` is the hook for explanations of a few errors in report.md: called with the texts of
the most confident errors, it returns one markdown string per text (or None to show nothing for it).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..fsutil import atomic_write_text
from . import plots
from .analysis import ErrorAnalysis

SHOWN_ERRORS = 5  # the most confident errors report.md lists (and explains, with explain_fn)
ExplainFn = Callable[[Sequence[str]], Sequence[str | None]]


def _cell(v: Any) -> Any:
    return json.dumps(v, ensure_ascii=False) if isinstance(v, (list, dict)) else v


def write_error_files(out_dir: Path, analyses: Sequence[ErrorAnalysis]) -> None:
    """errors.csv and errors.jsonl: every wrong example of every split, most confident first per split."""
    rows = [r for a in analyses for r in a.errors]
    columns = list(dict.fromkeys(k for r in rows for k in r)) or ["split", "line", "text", "gold", "predicted"]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: _cell(v) for k, v in r.items()} for r in rows)
    atomic_write_text(out_dir / "errors.csv", buf.getvalue())
    atomic_write_text(out_dir / "errors.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def _short(text: str, n: int = 120) -> str:
    text = " ".join(text.split()).replace("|", "\\|")
    return text if len(text) <= n else text[:n - 1] + "…"


def _shown(v: Any) -> str:
    if isinstance(v, list):  # NER entities
        return ", ".join(f"{e['text']} ({e['type']})" for e in v) or "(none)"
    return str(v)


def _slice_lines(a: ErrorAnalysis) -> list[str]:
    metrics = list(dict.fromkeys(k for kind in a.slices.values() for m in kind.values() for k in m if k != "examples"))
    shown = [m for m in metrics if m != "loss"]
    lines = [f"| slice | examples | {' | '.join(shown)} |", "|---|---|" + "---|" * len(shown)]
    for kind, groups in a.slices.items():
        for name, m in groups.items():
            lines.append(f"| {kind}: {name} | {m['examples']} | " + " | ".join(f"{m.get(k, 0.0):.4f}" for k in shown)
                         + " |")
    return lines


def warnings_section(analyses: Sequence[ErrorAnalysis]) -> list[str]:
    found = [f"- **{a.split}**: {w}" for a in analyses for w in a.warnings]
    return ["## Warnings", "", *found, ""] if found else []


def errors_section(out_dir: Path, analyses: Sequence[ErrorAnalysis], explain_fn: ExplainFn | None = None) -> list[str]:
    """Markdown for report.md ("Errors"), writing the reliability plots it links."""
    lines = ["## Errors", "", f"Every wrong example is in `errors.csv` and `errors.jsonl` ({out_dir.name}/).", ""]
    for a in analyses:
        lines += [f"### {a.split}", ""]
        if a.calibration is not None:
            c = a.calibration
            name = f"reliability_{a.split}.png"
            plots.reliability(c["bins"], c["ece"], out_dir / "plots" / name, f"{a.split} reliability")
            lines += [f"Calibration: expected calibration error (ECE, {len(c['bins'])} non-empty of 15 equal-width "
                      f"bins) **{c['ece']:.4f}**, maximum calibration error **{c['mce']:.4f}**.", "",
                      f"![{a.split} reliability](plots/{name})", ""]
        if a.slices:
            lines += ["Metrics per slice (script of the text; length quartile in characters):", ""]
            lines += _slice_lines(a) + [""]
        top = a.errors[:SHOWN_ERRORS]
        lines += [f"{len(a.errors)} wrong example(s)" + (f"; the {len(top)} most confident:" if top else "."), ""]
        if top:
            conf = "confidence" in top[0]
            lines += ["| text | gold | predicted |" + (" confidence |" if conf else ""),
                      "|---|---|---|" + ("---|" if conf else "")]
            lines += [f"| {_short(r['text'])} | {_short(_shown(r['gold']), 60)} | "
                      f"{_short(_shown(r['predicted']), 60)} |" + (f" {r['confidence']:.3f} |" if conf else "")
                      for r in top]
            lines.append("")
            lines += _explanations(top, explain_fn)
    return lines


def _explanations(rows: list[dict[str, Any]], explain_fn: ExplainFn | None) -> list[str]:
    """The ``explain_fn`` hook: markdown per explained error, under the errors table."""
    if explain_fn is None:
        return []
    shown = explain_fn([r["text"] for r in rows])
    lines = []
    for r, md in zip(rows, shown):
        if md:
            lines += [f"**Why {_short(_shown(r['predicted']), 40)}** for “{_short(r['text'], 80)}”:", "", md, ""]
    return lines
