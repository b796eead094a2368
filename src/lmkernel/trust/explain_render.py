"""Renderings of explanations: self-contained HTML (words coloured by score), PNG bars, and a markdown
snippet for the evaluation report.

Green pushes toward the label, red away from it; the colour's strength is the score over the text's
largest absolute score. Every text is escaped, so a model input cannot inject markup into the page.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from ..fsutil import atomic_write, atomic_write_text

_STYLE = ("body{font-family:system-ui,sans-serif;max-width:60em;margin:2em auto;line-height:1.9}"
          ".x{border:1px solid #ddd;border-radius:6px;padding:.8em 1em;margin:1em 0}"
          ".w{padding:.1em .15em;border-radius:3px}.m{color:#555;font-size:.9em}")


def _colour(score: float, scale: float) -> str:
    a = min(abs(score) / scale, 1.0) if scale > 0 else 0.0
    rgb = "22,163,74" if score >= 0 else "220,38,38"
    return f"rgba({rgb},{a * 0.75:.3f})"


def highlighted(text: str, words: list[dict[str, Any]]) -> str:
    """``text`` as HTML, each word in a span coloured by its score (its score in the tooltip)."""
    scale = max((abs(w["score"]) for w in words), default=0.0)
    out, pos = [], 0
    for w in words:
        out.append(html.escape(text[pos:w["start"]]))
        out.append(f'<span class="w" style="background:{_colour(w["score"], scale)}" '
                   f'title="{w["score"]:+.4f}">{html.escape(text[w["start"]:w["end"]])}</span>')
        pos = w["end"]
    out.append(html.escape(text[pos:]))
    return "".join(out)


def _faith(row: dict[str, Any]) -> str:
    if row.get("comprehensiveness") is None:
        return ""
    return (f"comprehensiveness {row['comprehensiveness']:.3f} (random {row['comprehensiveness_random']:.3f}), "
            f"sufficiency {row['sufficiency']:.3f} (random {row['sufficiency_random']:.3f})")


def _blocks(row: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(heading, highlighted text, faithfulness) per explained thing: the text, or each NER entity."""
    if row.get("task") == "ner":
        return [(f"{e['type']}: {e['text']} ({e['score']:.3f})", highlighted(row["text"], e["words"]), _faith(e))
                for e in row["entities"]] or [("no entity found", html.escape(row["text"]), "")]
    score = "" if row.get("score") is None else f" ({row['score']:.3f})"
    return [(f"{row['label']}{score}", highlighted(row["text"], row["words"]), _faith(row))]


def html_page(rows: list[dict[str, Any]], title: str = "lmkernel explanations") -> str:
    """One self-contained page (no scripts, no external files) for a list of explanations."""
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
             f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>"
             "<p class='m'>Green words push toward the label, red ones away; hover a word for its score.</p>"]
    for row in rows:
        for heading, body, faith in _blocks(row):
            parts.append(f"<div class='x'><b>{html.escape(heading)}</b> <span class='m'>{html.escape(row['method'])}"
                         f"</span><div>{body}</div><div class='m'>{html.escape(faith)}</div></div>")
    parts.append("</body></html>\n")
    return "".join(parts)


def write_html(path: str | Path, rows: list[dict[str, Any]]) -> Path:
    return atomic_write_text(path, html_page(rows))


def write_png(path: str | Path, rows: list[dict[str, Any]], top: int = 12) -> Path:
    """Horizontal bars of each explanation's ``top`` words by absolute score, one panel per text/entity."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = []
    for row in rows:
        things = row["entities"] if row.get("task") == "ner" else [row]
        for t in things:
            name = f"{t.get('type') or t.get('label')}: {(t.get('text') or '')[:40]}"
            panels.append((name, sorted(t["words"], key=lambda w: -abs(w["score"]))[:top][::-1]))
    panels = panels or [("nothing to explain", [])]
    fig, axes = plt.subplots(len(panels), 1, figsize=(7, 0.35 * sum(max(len(p[1]), 2) for p in panels) + 1),
                             squeeze=False)
    plt.rcParams["font.sans-serif"] = ["Noto Sans CJK SC", "WenQuanYi Zen Hei", "DejaVu Sans"]
    for ax, (name, words) in zip(axes[:, 0], panels):
        ax.barh(range(len(words)), [w["score"] for w in words],
                color=["#16a34a" if w["score"] >= 0 else "#dc2626" for w in words])
        ax.set_yticks(range(len(words)), [w["word"] for w in words])
        ax.axvline(0, color="#888", linewidth=0.8)
        ax.set_title(name, fontsize=9)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    plt.close(fig)
    return Path(path)


def markdown(rows: list[dict[str, Any]], top: int = 5) -> str:
    """A markdown list for ``report.md``: per explanation, the label and its top words with scores."""
    lines = []
    for row in rows:
        for heading, _, faith in _blocks(row):
            words = row["words"] if row.get("task") != "ner" else []
            best = ", ".join(f"`{w['word']}` {w['score']:+.3f}" for w in sorted(words, key=lambda w: -w["score"])[:top])
            text = row["text"].replace("\n", " ")
            lines.append(f"- {text[:120]!r} → **{heading}**" + (f": {best}" if best else "") +
                         (f" ({faith})" if faith else ""))
    return "\n".join(lines) + "\n"
