"""`lmkernel ask IDX "question"`: an answer grounded in a knowledge index, with its sources.

The same function as the server's grounded chat completions and ``lmkernel.knowledge.answer.ask`` in
Python, so all three give the same answer. Registered on the main app by cli.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..clikit import _guard
from ..knowledge.answer import DEFAULT_K, DEFAULT_MIN_SCORE, MAX_K


def ask(
    index: Annotated[Path, typer.Argument(help="Index folder (lmkernel index build ... --out IDX).")],
    question: Annotated[str, typer.Argument(help="The question.")],
    generator: Annotated[Optional[str], typer.Option(help="Chat model that writes the answer from the passages: "
                                                     "a run, an alias (smollm2, gemma3) or a local causal-LM "
                                                     "folder.")] = None,
    qa: Annotated[Optional[Path], typer.Option(help="Extractive QA run (task qa): the answer is the best span "
                                               "over the passages.")] = None,
    k: Annotated[int, typer.Option(help=f"Passages retrieved and given to the model (1-{MAX_K}).")] = DEFAULT_K,
    min_score: Annotated[float, typer.Option(help="Best dense cosine among the passages below which the answer is "
                                             "'I don't know' (no model runs).")] = DEFAULT_MIN_SCORE,
    min_bm25: Annotated[Optional[float], typer.Option(help="Also 'I don't know' when the best BM25 score is below "
                                                      "this (off by default; BM25 scores depend on the index: see "
                                                      "docs/serving.md).")] = None,
    mode: Annotated[str, typer.Option(help="hybrid | dense | bm25.")] = "hybrid",
    filter_: Annotated[Optional[list[str]], typer.Option("--filter", help="Metadata filter KEY=VALUE "
                                                         "(repeatable; a key given twice matches either).")] = None,
    max_new_tokens: Annotated[int, typer.Option(help="Most tokens the generator writes.")] = 256,
    as_json: Annotated[bool, typer.Option("--json", help="Print the answer, citations and passages as JSON.")]
    = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks for errors.")] = False,
) -> None:
    """Answer a question from a knowledge index, citing the passages used ([1], [2], ...)."""
    with _guard(debug):
        from ..knowledge.answer import ask as answer
        from .knowledge import parse_filters

        result = answer(str(index), question, generator=generator, qa=str(qa) if qa else None, k=k,
                        min_score=min_score, min_bm25=min_bm25, filters=parse_filters(filter_), mode=mode,
                        max_new_tokens=max_new_tokens)
        if as_json:
            typer.echo(json.dumps(result.to_json(), ensure_ascii=False, indent=2))
            return
        typer.echo(result.answer.strip())
        if result.citations:
            typer.echo("\nSources:")
            for c in result.citations:
                typer.echo(f"  [{c.index}] {c.source} ({c.chunk_id})")
