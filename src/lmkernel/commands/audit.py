"""`lmkernel audit verify FILE...`: check a hash-chained audit log; exit 1 at the first break."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..clikit import DebugOpt, _guard

audit_app = typer.Typer(help="The hash-chained audit log written by `serve --audit-log` and `monitor --audit-log`.",
                        no_args_is_help=True)


@audit_app.command("verify")
def verify(
    files: Annotated[list[Path], typer.Argument(help="The log file, or its rotated files oldest first "
                                                "(audit.jsonl.1 audit.jsonl.2 ... audit.jsonl).")],
    head: Annotated[Optional[str], typer.Option(help="A hash kept elsewhere (printed by an earlier verify): "
                                                "it must be in the chain, so lines cut from the end or a "
                                                "rewritten log are caught.")] = None,
    prev: Annotated[Optional[str], typer.Option(help="The hash the first line continues from, to check a "
                                                "rotated file alone.")] = None,
    json_: Annotated[bool, typer.Option("--json", help="Print the verdict as one JSON object.")] = False,
    debug: DebugOpt = False,
) -> None:
    """Report OK with the line count and the head hash, or the first changed, deleted, inserted or
    reordered line (exit 1)."""
    with _guard(debug):
        from ..trust.audit_verify import verify as check

        verdict = check(files, head=head, prev=prev)
        if json_:
            typer.echo(json.dumps(verdict.to_json()))
        elif verdict.ok:
            typer.echo(f"{verdict.message}; head {verdict.head}")
        else:
            typer.echo(f"BROKEN at {verdict.where}: {verdict.message}", err=True)
        if not verdict.ok:
            raise typer.Exit(1)
