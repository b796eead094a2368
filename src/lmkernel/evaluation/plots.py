"""PNG plots for reports (matplotlib, headless)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from ..fsutil import atomic_write


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import font_manager

    # Chinese label names need a CJK font when one is installed; otherwise glyphs fall back.
    cjk = [f.name for f in font_manager.fontManager.ttflist if "CJK" in f.name or "WenQuanYi" in f.name]
    if cjk:
        plt.rcParams["font.sans-serif"] = [cjk[0], "DejaVu Sans"]
    return plt


def _save(fig, path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # missing-glyph warnings for CJK text without a CJK font
        atomic_write(path, lambda p: fig.savefig(p, dpi=110, bbox_inches="tight", format="png"))


def loss_curves(history: list[dict[str, Any]], path: Path) -> Path | None:
    """Training loss per logged step and validation loss per evaluation."""
    train = [(h["step"], h["train_loss"]) for h in history if "train_loss" in h]
    val = [(h["step"], h["eval"]["loss"]) for h in history if "eval" in h and "loss" in h["eval"]]
    if not train and not val:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4))
    if train:
        ax.plot(*zip(*train), label="train loss", color="tab:blue")
    if val:
        ax.plot(*zip(*val), "o-", label="validation loss", color="tab:orange")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("cross-entropy loss")
    ax.grid(alpha=0.3)
    ax.legend()
    _save(fig, path)
    plt.close(fig)
    return path


def compared_loss_curves(histories: dict[str, list[dict[str, Any]]], path: Path) -> Path | None:
    """Several runs' training loss (lines) and validation loss (dots) on one chart, one colour a run."""
    if not any(histories.values()):
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.2, 4.4))
    for i, (name, history) in enumerate(histories.items()):
        colour = f"C{i % 10}"
        train = [(h["step"], h["train_loss"]) for h in history if "train_loss" in h]
        val = [(h["step"], h["eval"]["loss"]) for h in history if "eval" in h and "loss" in h["eval"]]
        if train:
            ax.plot(*zip(*train), color=colour, label=f"{name} train")
        if val:
            ax.plot(*zip(*val), "o--", color=colour, label=f"{name} validation")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    _save(fig, path)
    plt.close(fig)
    return path


def confusion_matrix(matrix: list[list[int]], labels: list[str], path: Path, title: str) -> Path:
    """Counts, rows = true label, columns = predicted label."""
    plt = _pyplot()
    n = len(labels)
    size = min(max(4.0, 0.35 * n + 2), 24)
    fig, ax = plt.subplots(figsize=(size, size * 0.85))
    im = ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(n), labels, rotation=90 if n > 8 else 0, fontsize=8 if n > 20 else 10)
    ax.set_yticks(range(n), labels, fontsize=8 if n > 20 else 10)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    if n <= 20:
        peak = max((max(r) for r in matrix), default=0)
        for i in range(n):
            for j in range(n):
                ax.text(j, i, str(matrix[i][j]), ha="center", va="center",
                        color="white" if matrix[i][j] > peak / 2 else "black", fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046)
    _save(fig, path)
    plt.close(fig)
    return path


def reliability(bins: list[dict[str, Any]], ece: float, path: Path, title: str) -> Path:
    """Accuracy against mean confidence per confidence bin, with the diagonal of perfect calibration."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 5))
    width = (bins[0]["hi"] - bins[0]["lo"]) if bins else 0.1
    ax.bar([b["lo"] for b in bins], [b["accuracy"] for b in bins], width=width, align="edge",
           edgecolor="black", color="tab:blue", alpha=0.8, label="accuracy")
    ax.plot([0, 1], [0, 1], "--", color="gray", label="perfect calibration")
    ax.plot([b["confidence"] for b in bins], [b["accuracy"] for b in bins], "o", color="tab:orange",
            label="mean confidence")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence (top probability)")
    ax.set_ylabel("accuracy")
    ax.set_title(f"{title} (ECE {ece:.3f})")
    ax.legend(loc="upper left")
    _save(fig, path)
    plt.close(fig)
    return path
