"""`lmkernel app ...`: build an application from its spec, ask it, measure it, serve it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..clikit import DebugOpt, QuietOpt, _guard, _log, settings_options
from ..serve.settings import ServeSettings  # stdlib-only: the serve flags' defaults and help

# model-server knobs that mean nothing for a bot (its models run in one worker, in fp32, through torch)
_MODEL_ONLY = ("max_batch", "max_wait_ms", "max_texts", "max_input_tokens", "max_new_tokens", "precision",
               "threads", "workers", "prepack", "runtime", "admission")

app_cli = typer.Typer(help="Applications: a bot built from one spec (intents + knowledge base + hand-off). "
                      "Start with `lmkernel app run examples/support/bot.yaml`.", no_args_is_help=True)

AppDirArg = Annotated[Path, typer.Argument(help="Application directory written by `lmkernel app run`.")]


def _print_eval(result: dict, path: Path) -> None:
    def pct(x):
        return "n/a" if x is None else f"{100 * x:.1f}%"

    typer.echo(f"eval: accuracy={pct(result['accuracy'])} answered_correctly={pct(result['answered_correctly'])} "
               f"declined_correctly={pct(result['declined_correctly'])} "
               f"citation_precision={pct(result['citation_precision'])} ({result['questions']} questions)")
    typer.echo(f"report: {path / 'eval.md'}")


@app_cli.command("run")
def run(
    spec: Annotated[Path, typer.Argument(help="Application spec (see examples/support/bot.yaml).")],
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Build every part of the application (train the intent classifier, index the documents) and measure it
    on the spec's held-out questions."""
    with _guard(debug):
        from ..app.build import build_app
        from ..app.spec import load_app_spec

        built = build_app(load_app_spec(spec), log=_log(quiet), progress=not quiet)
        if built.evaluation:
            _print_eval(built.evaluation, built.path)
        typer.echo(f"app:    {built.path}")


@app_cli.command("ask")
def ask(
    app_dir: AppDirArg,
    messages: Annotated[list[str], typer.Argument(help="Customer message(s); each is answered on its own.")],
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per message: kind (answer, handoff, "
                                          "unknown, out_of_scope), text, lang, intent, score, citations.")] = False,
    debug: DebugOpt = False,
) -> None:
    """Answer messages as the application would: the same decision `app serve` makes."""
    with _guard(debug):
        from ..app.support import SupportBot

        bot = SupportBot.load(app_dir)
        for message in messages:
            reply = bot.respond(message)
            if as_json:
                typer.echo(json.dumps(reply.to_json(), ensure_ascii=False))
                continue
            typer.echo(f"[{reply.kind}] {reply.text}")
            for c in reply.citations:
                typer.echo(f"  [{c['index']}] {c['source']} ({c['chunk_id']})")


@app_cli.command("eval")
def eval_(
    app_dir: AppDirArg,
    data: Annotated[Path, typer.Argument(help="Held-out questions (.jsonl: question, expect = the document id that "
                                         "answers it or null, contains = a fact the answer must hold).")],
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Measure the application on held-out questions: answer accuracy, declines, citation precision, threshold
    sweep (eval.md, eval.json in the application directory)."""
    with _guard(debug):
        from ..app.build import evaluate_app

        _print_eval(evaluate_app(app_dir, data, progress=not quiet), app_dir)


@app_cli.command("serve")
@settings_options(ServeSettings, exclude=_MODEL_ONLY)
def serve(
    app_dir: AppDirArg,
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    host: Annotated[str, typer.Option(help="Address to bind; 0.0.0.0 exposes the server to the network.")]
    = "127.0.0.1",
    api_key_env: Annotated[Optional[str], typer.Option(help="Environment variable holding comma-separated API "
                                                       "keys; clients send 'Authorization: Bearer KEY'.")] = None,
    api_key_file: Annotated[Optional[Path], typer.Option(help="File with one API key per line.")] = None,
    access_log: Annotated[bool, typer.Option(help="Log every request, query strings redacted.")] = False,
    settings_values: dict | None = None,
    debug: DebugOpt = False,
) -> None:
    """Serve the application over HTTP: OpenAI-compatible /v1/chat/completions (the bot answers the last user
    message; its decision and citations in the `lmkernel` field) and /v1/app/respond; /healthz, /readyz,
    /metrics, /v1/models."""
    with _guard(debug):
        from ..app.serving import serve_app
        from ..serve.settings import read_api_keys

        keys = read_api_keys(api_key_env, str(api_key_file) if api_key_file else None)
        settings = ServeSettings(**{"admission": "off", **(settings_values or {})}, api_keys=keys)
        serve_app(app_dir, host=host, port=port, settings=settings, access_log=access_log)
