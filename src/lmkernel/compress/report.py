"""Tables, markdown, JSON and the metric-vs-throughput plot for compression and comparison.

One table shape serves both ``compress`` (original vs result) and ``compare`` (any number of
artifacts): one row per artifact, ratios against the first row, so the two reports read alike.
"""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any

from ..fsutil import atomic_write_json, atomic_write_text
from .measure import ROUNDS, Measurement

METRIC = "accuracy"  # the task metric the tables and the plot show


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e5 else f"{n / 1e3:.1f} kB"


def _params(n: int) -> str:
    return f"{n / 1e6:.2f}M" if n >= 1e5 else f"{n / 1e3:.1f}k"


def sig(x: float, digits: int = 3) -> str:
    """``x`` to ``digits`` significant figures, without exponent: timings on a shared CPU are not
    worth more digits than that."""
    text = f"{x:.{digits}g}"
    return f"{float(text):.0f}" if "e" in text else text


def _spread(value: float, pair: tuple[float, float] | None) -> str:
    return sig(value) if not pair else f"{sig(value)} ({sig(pair[0], 2)}–{sig(pair[1], 2)})"


def table(rows: list[Measurement], batch_size: int) -> str:
    """Markdown table, one row per artifact; the ``x`` columns are ratios to the first row. Timings
    show their spread in brackets: latency p25–p75, throughput slowest–fastest round."""
    base = rows[0]
    head = (f"| artifact | weights | size | params | p50 ms (batch 1) | examples/s (batch {batch_size}) | {METRIC} "
            "| size x | speed x | latency x | {m} change (points) |").replace("{m}", METRIC)
    lines = [head, "|" + "---|" * 11]
    for r in rows:
        metric, ref = r.metrics.get(METRIC), base.metrics.get(METRIC)
        shown = f"{metric:.4f}" if metric is not None else "-"
        delta = f"{100 * (metric - ref):+.2f}" if metric is not None and ref is not None else "-"
        lines.append(f"| {r.name} | {r.weights} | {_size(r.size_bytes)} | {_params(r.params)} "
                     f"| {_spread(r.latency_p50_ms, r.latency_quartiles_ms)} "
                     f"| {_spread(r.throughput, r.throughput_range)} | {shown} "
                     f"| {r.size_bytes / base.size_bytes:.2f} | {sig(r.throughput / base.throughput, 2)} "
                     f"| {sig(r.latency_p50_ms / base.latency_p50_ms, 2)} | {delta} |")
    return "\n".join(lines)


def ratios(base: Measurement, other: Measurement) -> dict[str, float | None]:
    metric, ref = other.metrics.get(METRIC), base.metrics.get(METRIC)
    return {"size": other.size_bytes / base.size_bytes, "params": other.params / base.params,
            "throughput": other.throughput / base.throughput,
            "latency_p50": other.latency_p50_ms / base.latency_p50_ms,
            f"{METRIC}_change_points": None if metric is None or ref is None else 100 * (metric - ref)}


def environment() -> dict[str, Any]:
    """Where the figures were taken; the load average says whether other work shared the CPU."""
    import os

    import torch

    return {"machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
            "cpu_capability": torch.backends.cpu.get_cpu_capability(), "threads": torch.get_num_threads(),
            "cores": os.cpu_count(), "load_average_1min": round(os.getloadavg()[0], 2), "torch": torch.__version__}


def _how(info: dict[str, Any]) -> str:
    env = info["environment"]
    return (f"Data: {info['data']['source']}, {info['examples']} examples, length-sorted batches of "
            f"{info['batch_size']}; throughput times the model forward only (in brackets: the slowest and fastest of "
            f"{ROUNDS} interleaved rounds of batches). Latency: median of `predict()` on "
            f"{info['latency_samples']} single texts (tokenize + forward + softmax; in brackets: quartiles).\n"
            f"Machine: {env['machine']}, CPU capability {env['cpu_capability']}, {env['threads']} threads on "
            f"{env['cores']} cores, load average {env['load_average_1min']} before measuring (figures from a busy "
            f"machine are not comparable), torch {env['torch']}.\n")


def write_compression(out_dir: Path, info: dict[str, Any], original: Measurement, result: Measurement) -> str:
    """compression.json + compression.md in ``out_dir``; returns the markdown table."""
    info = {**info, "original": original.to_json(), "compressed": result.to_json(),
            "ratios": ratios(original, result)}
    atomic_write_json(out_dir / "compression.json", info)
    text = table([original, result], info["batch_size"])
    options = ", ".join(f"{k}={v}" for k, v in info["options"].items() if v is not None) or "defaults"
    md = (f"# Compression: {info['method']}\n\n{info['summary']}\n\n"
          f"Original `{info['source']}` -> result `{info['result']}` (options: {options}).\n\n"
          f"{text}\n\n{_how(info)}")
    atomic_write_text(out_dir / "compression.md", md)
    return text


def write_comparison(out_dir: Path, info: dict[str, Any], rows: list[Measurement]) -> str:
    """compare.json, compare.md and compare.png (metric vs throughput) in ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out_dir / "compare.json", {**info, "artifacts": [r.to_json() for r in rows]})
    text = table(rows, info["batch_size"])
    atomic_write_text(out_dir / "compare.md", f"# Comparison\n\n{text}\n\n{_how(info)}")
    plot(rows, out_dir / "compare.png", info["batch_size"])
    return text


def plot(rows: list[Measurement], path: Path, batch_size: int) -> Path:
    """One labelled point per artifact: task metric against throughput."""
    from ..evaluation.plots import _pyplot, _save

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    markers = "osD^vP*X"
    for i, r in enumerate(rows):  # a legend, not annotations: close points would overprint their labels
        ax.scatter(r.throughput, r.metrics.get(METRIC, float("nan")), s=50, marker=markers[i % len(markers)],
                   label=f"{r.name} ({r.weights}, {_size(r.size_bytes)})")
    ax.legend(fontsize=8, loc="best")
    ax.set_xlabel(f"throughput (examples/s, batch {batch_size})")
    ax.set_ylabel(METRIC)
    ax.set_title(f"{METRIC} vs throughput")
    ax.grid(alpha=0.3)
    ax.margins(x=0.25, y=0.15)
    _save(fig, path)
    plt.close(fig)
    return path

