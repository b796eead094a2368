"""report.md + metrics.json + plots for a run or an eval: what people read and trust."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..data.readers import BadRow
from ..fsutil import atomic_write_json, atomic_write_text
from . import plots
from .errors_report import ExplainFn, errors_section, warnings_section, write_error_files


@dataclass
class ReportInput:
    title: str
    labels: list[str]
    metrics: dict[str, dict[str, Any]]  # split name -> metrics
    data_counts: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, list[BadRow]] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)  # spec summary, shown as a table
    params: tuple[int, int] | None = None  # (trainable, total)
    training: dict[str, Any] | None = None  # time, throughput, steps, precision, best
    history: list[dict[str, Any]] = field(default_factory=list)
    sections: list[str] = field(default_factory=list)  # task-specific markdown after the data table
    analyses: list[Any] = field(default_factory=list)  # evaluation.analysis.ErrorAnalysis per analysed split


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4f}" if abs(v) < 10 else f"{v:.1f}"
    return str(v)


def metrics_json(r: ReportInput, primary: str) -> dict[str, Any]:
    """The primary split's headline metrics at the top level, every split under its name."""
    out: dict[str, Any] = {}
    head = r.metrics.get(primary, {})
    out.update({k: v for k, v in head.items() if isinstance(v, (int, float))})
    for split, m in r.metrics.items():
        out[split] = m
    if r.training:
        out["training"] = r.training
    if r.params:
        out["trainable_params"], out["total_params"] = r.params
    out["skipped_rows"] = {k: len(v) for k, v in r.skipped.items()}
    return out


def _split_section(split: str, m: dict[str, Any], labels: list[str], plot: str | None) -> list[str]:
    lines = [f"## {split} metrics", "", "| metric | value |", "|---|---|"]
    lines += [f"| {k} | {_fmt(v)} |" for k, v in m.items() if isinstance(v, (int, float))]
    per_class = m.get("per_class", {})
    rows = [f"| {lab} | {c['precision']:.4f} | {c['recall']:.4f} | {c['f1']:.4f} | {c['support']} |"
            for lab in labels + [k for k in per_class if k not in labels]  # NER: keyed by entity type, not tag
            if (c := per_class.get(lab))]
    if rows:  # tasks without labels (qa, generation) have no per-label table
        lines += ["", "| label | precision | recall | f1 | support |", "|---|---|---|---|---|"] + rows
    if plot:
        lines += ["", f"![{split} confusion matrix]({plot})"]
    return lines + [""]


def _add_analysis(r: ReportInput) -> None:
    """Calibration errors and per-slice metrics join their split's metrics (metrics.json, the tables)."""
    for a in r.analyses:
        m = r.metrics.get(a.split)
        if m is None:
            continue
        if a.calibration is not None:
            m["ece"], m["mce"] = a.calibration["ece"], a.calibration["mce"]
        m["slices"] = a.slices
        m["errors"] = len(a.errors)


def write_report(out_dir: Path, r: ReportInput, primary: str = "validation",
                 explain_fn: ExplainFn | None = None) -> dict[str, Any]:
    """Write report.md, metrics.json, plots/*.png and (with analyses) errors.csv/.jsonl into ``out_dir``;
    return the metrics dict. ``explain_fn``: texts -> markdown per text, explaining the errors shown."""
    plot_dir = out_dir / "plots"
    lines = [f"# {r.title}", ""]
    if r.analyses:
        _add_analysis(r)
        write_error_files(out_dir, r.analyses)
        lines += warnings_section(r.analyses)
    if r.summary:
        lines += ["| setting | value |", "|---|---|"] + [f"| {k} | {v} |" for k, v in r.summary.items()] + [""]
    if r.data_counts:
        lines += ["## Data", "", "| split | examples | skipped rows |", "|---|---|---|"]
        lines += [f"| {s} | {n} | {len(r.skipped.get(s, []))} |" for s, n in r.data_counts.items()] + [""]
        bad = [b for rows in r.skipped.values() for b in rows]
        if bad:
            lines += ["Skipped rows (first 20):", ""] + [f"- `{b.render()}`" for b in bad[:20]] + [""]
    lines += r.sections
    if r.params:
        t, n = r.params
        lines += [f"**Trainable parameters:** {t:,} of {n:,} ({100 * t / n:.2f}%)", ""]
    if r.training:
        lines += ["## Training", "", "| | |", "|---|---|"] + [f"| {k} | {_fmt(v)} |" for k, v in r.training.items()]
        lines.append("")
        if plots.loss_curves(r.history, plot_dir / "loss.png"):
            lines += ["![loss curves](plots/loss.png)", ""]
    for split, m in r.metrics.items():
        plot = None
        if m.get("confusion_matrix"):
            name = f"confusion_{split}.png"
            plots.confusion_matrix(m["confusion_matrix"], r.labels, plot_dir / name, f"{split} confusion matrix")
            plot = f"plots/{name}"
        lines += _split_section(split, m, r.labels, plot)
    if r.analyses:
        lines += errors_section(out_dir, r.analyses, explain_fn)
    atomic_write_text(out_dir / "report.md", "\n".join(lines))
    data = metrics_json(r, primary)
    atomic_write_json(out_dir / "metrics.json", data)
    return data
