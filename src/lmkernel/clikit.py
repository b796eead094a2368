"""What every command module shares: the guard that prints LmkError as what / where / fix, common options."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Optional

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


def _flag_type(tp: Any) -> tuple[Any, bool]:
    """The type a flag parses for a settings field, and whether it is a comma-separated list."""
    import typing

    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if tp is tuple or typing.get_origin(tp) is tuple or any(typing.get_origin(a) is tuple for a in args):
        return Optional[str], True
    if args:  # X | None
        return Optional[args[0]], False
    return tp, False


@dataclass(frozen=True)
class Flag:
    """One generated option: ``--name`` parsing ``annotation`` (a comma-separated list when ``is_list``)."""

    name: str
    annotation: Any
    default: Any
    help: str
    is_list: bool = False


def with_flags(flags: list[Flag]) -> Callable[[Callable], Callable]:
    """A decorator adding ``flags`` to a typer command (before its last parameter, ``--debug``). The command
    receives their values as ``settings_values``: a dict of the flags given a value other than their default,
    lists split on commas."""
    import functools
    import inspect

    def decorate(fn: Callable) -> Callable:
        sig = inspect.signature(fn, eval_str=True)
        own = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in sig.parameters.values()
               if p.name != "settings_values"]
        added = [inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=None if f.is_list else f.default,
                                   annotation=Annotated[f.annotation, typer.Option(help=f.help)]) for f in flags]

        @functools.wraps(fn)
        def wrapper(**kwargs: Any) -> Any:
            values = {}
            for f in flags:
                value = kwargs.pop(f.name)
                if f.is_list:
                    if value is None:
                        continue
                    value = tuple(p.strip() for p in value.split(",") if p.strip())
                if value != f.default:
                    values[f.name] = value
            return fn(settings_values=values, **kwargs)

        params = own[:-1] + added + own[-1:]  # --debug stays last
        wrapper.__signature__ = sig.replace(parameters=params)
        wrapper.__annotations__ = {p.name: p.annotation for p in params}  # evaluated objects, not strings
        del wrapper.__wrapped__  # typer must read the new signature, not the wrapped function's
        return wrapper

    return decorate


def settings_options(cls: type, exclude: tuple[str, ...] = ()) -> Callable[[Callable], Callable]:
    """One flag per field of the dataclass ``cls`` that carries help text (``field(metadata={"help": ...})``):
    the default and the help are written once, in the settings class (see ``with_flags``)."""
    import dataclasses
    import typing

    hints = typing.get_type_hints(cls)
    flags = []
    for f in dataclasses.fields(cls):
        if "help" in f.metadata and f.name not in exclude:
            tp, is_list = _flag_type(hints[f.name])
            flags.append(Flag(f.name, tp, f.default, f.metadata["help"], is_list))
    return with_flags(flags)


def texts_from_file(path: Path, text_column: str) -> list[str]:
    """``--input`` of predict and guard: .txt one text a line; .jsonl/.csv/.tsv the given column."""
    from .data.readers import detect_format, read_rows

    if not path.is_file():
        raise LmkError(f"cannot read {path}: no such file", where="--input",
                       fix="give a .txt (one text a line), .jsonl, .csv or .tsv file of texts")
    if path.suffix.lower() == ".txt":
        try:
            return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        except (OSError, UnicodeDecodeError) as e:
            raise LmkError(f"cannot read the input file {path}: {e}", where="--input",
                           fix="pass a UTF-8 text file with one text per line") from None
    fmt = detect_format(path)
    result = read_rows(path, [text_column], fmt)
    if result.bad:
        b = result.bad[0]
        raise LmkError(f"bad row in {path}: {b.reason}", where=f"{b.file} line {b.line}", fix="fix or remove the row")
    return [str(r.fields[text_column]) for r in result.rows]
