"""What every command module shares: the guard that prints LmkError as what / where / fix, common options."""

from __future__ import annotations

import os
from typing import Annotated, Optional

import typer

from .errors import LmkError

SetOpt = Annotated[
    Optional[list[str]],
    typer.Option("--set", "-s", help="Override a spec field, e.g. --set train.epochs=1 (repeatable; "
                 "values are parsed as YAML)."),
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")]
DebugOpt = Annotated[bool, typer.Option("--debug", help="Show full tracebacks for errors.")]


def _fail(e: LmkError) -> None:
    typer.secho("error: " + e.render(), fg=typer.colors.RED, err=True)
    raise typer.Exit(2)


def _guard(debug: bool):
    """Context manager that turns LmkError into a clean message and exit code 2."""

    class Guard:
        def __enter__(self):
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()  # our own bars show progress; theirs add noise
            if not debug:
                hf_logging.set_verbosity_error()
            return self

        def __exit__(self, kind, exc, tb):
            if isinstance(exc, LmkError) and not debug:
                _fail(exc)
            if isinstance(exc, KeyboardInterrupt):
                typer.secho("interrupted; continue with --resume", err=True)
                raise typer.Exit(130)
            return False

    return Guard()


def _log(quiet: bool):
    return (lambda _: None) if quiet else (lambda s: typer.echo(s, err=True))
