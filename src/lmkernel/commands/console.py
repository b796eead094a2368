"""`lmkernel console [DIR]`: the web console over a runs folder, on 127.0.0.1 unless --host says otherwise."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..clikit import DebugOpt, _fail
from ..errors import LmkError


def console(
    folder: Annotated[Path, typer.Argument(help="Folder of runs to show; runs started in the page go here too.")]
    = Path("runs"),
    port: Annotated[int, typer.Option(help="TCP port.")] = 7860,
    host: Annotated[str, typer.Option(help="Address to bind; 0.0.0.0 exposes the console to the network "
                                      "(give it --api-key-env then).")] = "127.0.0.1",
    api_key_env: Annotated[Optional[str], typer.Option(help="Environment variable holding comma-separated API "
                                                       "keys; the page asks for one once.")] = None,
    api_key_file: Annotated[Optional[Path], typer.Option(help="File with one API key per line.")] = None,
    allowed_hosts: Annotated[Optional[list[str]], typer.Option("--allowed-hosts", help="Host header names to "
                                                               "answer besides the bound address's.")] = None,
    threads: Annotated[Optional[int], typer.Option(min=1, help="Torch threads for the playground's models (default: "
                                                   "all cores; fewer leaves cores to a run training meanwhile).")]
    = None,
    server: Annotated[Optional[str], typer.Option(help="A running `lmkernel serve` (http://HOST:PORT): the "
                                                  "playground and the monitor use it unless the page names "
                                                  "another.")] = None,
    server_key_env: Annotated[Optional[str], typer.Option(help="Environment variable holding --server's API "
                                                          "key (sent to --server only).")] = None,
    debug: DebugOpt = False,
) -> None:
    """A local web page: runs and their reports, comparisons, new runs with live curves (stop, resume), a
    playground (classify with explanations, chat, search) and a server's monitor. No request leaves it."""
    try:  # not clikit._guard: it imports transformers, which would double the console's start time
        _serve_console(folder, port, host, api_key_env, api_key_file, allowed_hosts, threads,
                       _server(server, server_key_env))
    except LmkError as e:
        if debug:
            raise
        _fail(e)


def _serve_console(folder: Path, port: int, host: str, api_key_env: str | None, api_key_file: Path | None,
                   allowed_hosts: list[str] | None, threads: int | None,
                   server: tuple[str | None, str | None]) -> None:
    """Bind and serve until Ctrl-C."""
    import uvicorn

    from ..console import create_console
    from ..serve.guards import default_allowed_hosts
    from ..serve.settings import read_api_keys

    keys = read_api_keys(api_key_env, str(api_key_file) if api_key_file else None) \
        if (api_key_env or api_key_file) else frozenset()
    if folder.exists() and not folder.is_dir():
        raise LmkError(f"{folder} is not a folder", where="DIR", fix="give the folder your runs are in")
    folder.mkdir(parents=True, exist_ok=True)
    hosts = default_allowed_hosts(host)
    if allowed_hosts and hosts is not None:
        hosts = (*hosts, *allowed_hosts)
    app = create_console(folder, api_keys=keys, host=host, allowed_hosts=hosts, threads=threads,
                         server=server[0], server_key=server[1])
    typer.echo(f"lmkernel console on http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{port}/ "
               f"(runs in {folder.resolve()}{', API key required' if keys else ''})", err=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")


def _server(url: str | None, key_env: str | None) -> tuple[str | None, str | None]:
    """(--server, its key from --server-key-env), checked before the console binds."""
    import os
    from urllib.parse import urlsplit

    if url is not None and (urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).netloc):
        raise LmkError(f"--server {url!r} is not a server URL", where="--server",
                       fix="give the address lmkernel serve printed, e.g. http://127.0.0.1:8000")
    if key_env is None:
        return url, None
    if url is None:
        raise LmkError("--server-key-env without --server", where="--server-key-env",
                       fix="give --server URL too: the key is sent to that server only")
    key = os.environ.get(key_env, "").strip()
    if not key:
        raise LmkError(f"environment variable {key_env} is not set", where="--server-key-env",
                       fix=f"export {key_env}=<the server's API key>")
    return url, key
