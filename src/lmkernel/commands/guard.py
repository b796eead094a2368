"""`lmkernel guard`: run the guards over texts and print each one's findings and redacted form."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..clikit import DebugOpt, _guard, texts_from_file
from ..errors import LmkError


def read_texts(path: Path) -> list[str]:
    """``--input``: read as ``lmkernel predict`` reads it (.txt one a line; .jsonl/.csv/.tsv a ``text`` field)."""
    return texts_from_file(path, "text")


def guard(
    texts: Annotated[Optional[list[str]], typer.Argument(help="Texts to check.")] = None,
    input_: Annotated[Optional[Path], typer.Option("--input", "-i", help="File of texts: .txt (one per line), "
                                                   ".jsonl, .csv or .tsv (a 'text' field).")] = None,
    model: Annotated[Optional[str], typer.Option("--model", "-m", help="A run: its stored guard: section applies "
                                                 "(unless --guard), a classification run's ood/low_confidence "
                                                 "flags are added, a chat run's control tokens are looked for.")]
    = None,
    guard_file: Annotated[Optional[Path], typer.Option("--guard", "-g", help="YAML of a guard: section (pii, "
                                                       "blocklist, injection, offensive, ood, low_confidence); "
                                                       "default: the run's, else PII redaction only.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object per text: text, findings "
                                          "(type, start, end, action, score), redacted, refused.")] = False,
    debug: DebugOpt = False,
) -> None:
    """Apply the guards (PII, blocklists, template injection; offensive/ood/low-confidence with a run) to texts
    and print, per text, the findings and the text after redaction."""
    with _guard(debug):
        from ..trust.guardrun import guard_texts

        items = list(texts or []) + (read_texts(input_) if input_ is not None else [])
        if not items:
            raise LmkError("no texts to check", where="guard", fix='pass texts ("call me at 138 1234 5678") or '
                           "--input FILE")
        results, notes = guard_texts(items, model=model, guard_file=guard_file)
        for note in notes:
            typer.echo(f"note: {note}", err=True)
        for text, r in zip(items, results):
            if as_json:
                typer.echo(json.dumps({"text": text, **r.to_json()}, ensure_ascii=False))
                continue
            marks = ", ".join(f"{f.type}[{f.start}:{f.end}] {f.action}" if f.start is not None
                              else f"{f.type} {f.action}" for f in r.findings) or "no findings"
            typer.echo(f"{marks}\n  {r.redacted}")
