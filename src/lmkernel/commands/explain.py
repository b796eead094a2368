"""`lmkernel explain`: which words made a run's model decide as it did, and how faithful that is."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..clikit import DebugOpt, _guard, texts_from_file
from ..errors import LmkError


def _texts(texts: list[str] | None, file: Path | None) -> list[str]:
    out = list(texts or [])
    if file is not None:
        out += texts_from_file(file, "text")
    if not out:
        raise LmkError("no text to explain", where="TEXT / --input", fix='pass a text (lmkernel explain RUN "text") '
                       "or --input FILE with one text per line")
    return out


def _show(row: dict, top: int = 8) -> None:
    items = row["entities"] if row["task"] == "ner" else [row]
    typer.echo(row["text"][:200])
    if not items:
        typer.echo("  no entity found")
    for item in items:
        head = f"{item['type']} {item['text']!r}" if row["task"] == "ner" else repr(item["label"])
        typer.echo(f"  {head} ({item['score']:.3f}, {row['method']})")
        best = sorted(item["words"], key=lambda w: -abs(w["score"]))[:top]
        typer.echo("    " + "  ".join(f"{w['word']} {w['score']:+.3f}" for w in best))
        if item.get("comprehensiveness") is not None:
            typer.echo(f"    comprehensiveness {item['comprehensiveness']:.3f} (random "
                       f"{item['comprehensiveness_random']:.3f})  sufficiency {item['sufficiency']:.3f} (random "
                       f"{item['sufficiency_random']:.3f})")


def explain(
    run: Annotated[Path, typer.Argument(help="A run directory (or its model/ folder): a classification, ner or "
                                        "causal-LM (chat, translation, summarization) run.")],
    texts: Annotated[Optional[list[str]], typer.Argument(help="Texts to explain (generation: prompts).")] = None,
    input_file: Annotated[Optional[Path], typer.Option("--input", "-i", help="Texts to explain, after any TEXT "
                                                        "arguments: .txt one a line; .jsonl/.csv/.tsv their text "
                                                        "column.")] = None,
    label: Annotated[Optional[str], typer.Option("--label", "-l", help="Explain this label instead of the "
                                                 "predicted one (ner: only entities of this type; generation: "
                                                 "this continuation instead of the generated one).")] = None,
    method: Annotated[str, typer.Option("--method", help="ig: layer integrated gradients on the embeddings; "
                                        "occlusion: the drop when each word is deleted (forward passes only); "
                                        "auto: ig where it applies, else occlusion.")] = "auto",
    steps: Annotated[int, typer.Option("--steps", min=1, help="Integration points of ig (more: slower, "
                                       "closer to the exact integral).")] = 4,
    precision: Annotated[str, typer.Option("--precision", help="auto (bf16 autocast where the hardware has "
                                           "fast bf16, as training does; else fp32), fp32 or bf16.")] = "auto",
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens", min=1, help="Generation: output tokens "
                                                "to generate and explain (each costs a pass per prompt "
                                                "word).")] = 8,
    html: Annotated[Optional[Path], typer.Option("--html", help="Write a self-contained HTML page with the "
                                                 "words coloured by score.")] = None,
    png: Annotated[Optional[Path], typer.Option("--png", help="Write a PNG bar chart of each text's top "
                                                "words.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object per text: label, score, "
                                          "words [{word, start, end, score}], comprehensiveness, sufficiency "
                                          "and their *_random baselines (ner: entities).")] = False,
    debug: DebugOpt = False,
) -> None:
    """Explain a run's predictions: a score per word (positive pushes toward the label), with faithfulness:
    comprehensiveness and sufficiency of the top 20 % of words against as many random ones."""
    with _guard(debug):
        import lmkernel

        from ..trust.explain import explain as run_explain

        items = _texts(texts, input_file)
        handle = lmkernel.load(run)
        rows = run_explain(handle, items, label=label, method=method, n_steps=steps, precision=precision,
                           max_new_tokens=max_new_tokens)
        if html is not None:
            from ..trust.explain_render import write_html

            write_html(html, rows)
        if png is not None:
            from ..trust.explain_render import write_png

            write_png(png, rows)
        for row in rows:
            if as_json:
                typer.echo(json.dumps(row, ensure_ascii=False))
            else:
                _show(row)
