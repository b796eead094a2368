"""The `lmkernel` command line: each command parses, calls one stage function, prints.

User errors (LmkError) print as what / where / fix without a traceback; --debug shows it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from .clikit import DebugOpt, QuietOpt, SetOpt, _fail, _guard, _log, settings_options, texts_from_file, with_flags  # noqa: F401  (shared by command modules)
from .errors import LmkError
from .knowledge.answer import DEFAULT_K as _ANSWER_K  # light: the grounded-answer flags' defaults
from .knowledge.answer import DEFAULT_MIN_SCORE as _ANSWER_MIN
from .serve.settings import ServeSettings as _Serve  # stdlib-only: the serve flags' defaults

app = typer.Typer(
    help="lmkernel: train, evaluate and use language models from one YAML spec.\n\n"
    "Start with `lmkernel run examples/sentiment.yaml`; `lmkernel inspect SPEC` shows every setting.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

def _print_metrics(metrics: dict, run_dir: Path, report_dir: Path, task: str) -> None:
    from .tasks import task_info

    keys = task_info(task).shown  # the task's own metrics, in its order
    for split in ("validation", "test", "eval"):
        m = metrics.get(split)
        if isinstance(m, dict):
            shown = ", ".join(f"{k}={m[k]:.4f}" for k in keys if k in m)
            typer.echo(f"{split}: {shown}")
    typer.echo(f"run:    {run_dir}")
    typer.echo(f"report: {report_dir / 'report.md'}")


ContinueOpt = Annotated[Optional[Path], typer.Option(
    "--continue-from", help="Continual learning: a classification run whose model goes on to learn this spec's data "
    "and new labels without forgetting its own (replay buffer + EWC, spec section continual:; docs/continual.md).")]


def _train_command(spec_path: Path, sets: list[str] | None, resume: bool, quiet: bool, debug: bool,
                   final_eval: bool, continue_from: Path | None = None, trial: Any = None) -> None:
    with _guard(debug):
        from .pipeline import run as run_pipeline
        from .spec import load_spec

        spec = load_spec(spec_path, sets or [])
        result = run_pipeline(spec, resume=resume, final_eval=final_eval, progress=not quiet,
                              continue_from=continue_from, trial=trial)
        if result.metrics:
            _print_metrics(result.metrics, result.run_dir, result.run_dir, spec.task.type)


@app.command()
def run(
    spec: Annotated[Path, typer.Argument(help="YAML spec file (see examples/).")],
    set_: SetOpt = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in output.dir from its last "
                                         "checkpoint (model, optimizer, scheduler, RNG, data position).")] = False,
    continue_from: ContinueOpt = None,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Train, evaluate on validation and test, write the report and the model artifact."""
    _train_command(spec, set_, resume, quiet, debug, final_eval=True, continue_from=continue_from)


@app.command()
def train(
    spec: Annotated[Path, typer.Argument(help="YAML spec file (see examples/).")],
    set_: SetOpt = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from the last checkpoint.")] = False,
    continue_from: ContinueOpt = None,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
    trial: Annotated[bool, typer.Option("--trial", hidden=True, help="A search trial (lmkernel tune): metrics.json "
                                        "only, no report.")] = False,
    trial_beat: Annotated[Optional[float], typer.Option("--trial-beat", hidden=True, help="With --trial: save the "
                                                        "model only if the best metric beats this.")] = None,
) -> None:
    """Train and save the artifact, evaluating on validation only (the test split is left untouched)."""
    mode = None
    if trial:
        from .search.trialrun import TrialMode

        mode = TrialMode(beat=trial_beat)
    _train_command(spec, set_, resume, quiet, debug, final_eval=False, continue_from=continue_from, trial=mode)


@app.command()
def pretrain(
    spec: Annotated[Path, typer.Argument(help="YAML spec with task.type: pretrain (see examples/pretrain.yaml).")],
    set_: SetOpt = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from the last checkpoint (model, optimizer, "
                                         "RNG, position in the corpus stream).")] = False,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Pretrain from raw text (mlm or clm): train a tokenizer if needed, stream the corpus, save the model."""
    with _guard(debug):
        from .pretrain import pretrain as run_pretrain
        from .spec import load_spec

        loaded = load_spec(spec, set_ or [])
        if loaded.task.type != "pretrain":
            raise LmkError(f"lmkernel pretrain needs task.type: pretrain, not {loaded.task.type!r}", where=str(spec),
                           fix=f"use `lmkernel run {spec}` for this task, or set task.type: pretrain")
        result = run_pretrain(loaded, resume=resume, progress=not quiet)
        m = result.metrics.get("validation")
        if isinstance(m, dict):
            typer.echo(f"validation: loss={m['loss']:.4f}, perplexity={m['perplexity']:.2f}")
        typer.echo(f"run:    {result.run_dir}")
        typer.echo(f"model:  {result.run_dir / 'model'}")


@app.command("eval")
def eval_(
    run_dir: Annotated[Path, typer.Argument(help="Run directory (or its model/ folder).")],
    data: Annotated[Path, typer.Option("--data", "-d", help="Labelled file to evaluate on (.csv/.tsv/.jsonl; "
                                            "qa: SQuAD-layout .json or .jsonl).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for metrics.json, report.md and plots.")],
    text_column: Annotated[Optional[str], typer.Option(help="Text column (default: training's).")] = None,
    label_column: Annotated[Optional[str], typer.Option(help="Label column (default: training's).")] = None,
    fmt: Annotated[str, typer.Option("--format", help="auto | csv | tsv | jsonl.")] = "auto",
    on_bad_rows: Annotated[str, typer.Option(help="error: stop at a bad row; skip: drop and count them.")] = "error",
    batch_size: Annotated[int, typer.Option(help="Examples per batch.")] = 64,
    robustness: Annotated[bool, typer.Option("--robustness", help="classification: also report accuracy on "
                                             "perturbed copies (typos, synonyms, Chinese variants).")] = False,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Metrics of a saved model on new labelled data."""
    with _guard(debug):
        from .pipeline import evaluate_run

        if on_bad_rows not in ("error", "skip"):
            raise LmkError(f"--on-bad-rows {on_bad_rows!r}", where="--on-bad-rows", fix="use error or skip")
        metrics = evaluate_run(run_dir, data, out, text_column=text_column, label_column=label_column, fmt=fmt,
                               on_bad_rows=on_bad_rows, batch_size=batch_size, progress=not quiet,
                               robustness=robustness)
        from .artifact import find_model_dir, read_card

        _print_metrics(metrics, run_dir, out, read_card(find_model_dir(run_dir))["task"])


def _qa_items(model, texts: list[str], questions: list[str], contexts: list[str], path: Path | None) -> list:
    """predict's inputs for a qa run (and the error for --question on another task)."""
    from .tasks.qa_data import predict_inputs

    if model.card["task"] != "qa":
        raise LmkError(f"--question/--context are for qa runs; this is a {model.card['task']} run",
                       where="predict", fix="pass texts to predict instead")
    if texts:
        raise LmkError("a qa run answers --question with --context, not bare texts", where="predict",
                       fix='lmkernel predict RUN --question "who ...?" --context "..."')
    return predict_inputs(questions, contexts, path)


@app.command()
def predict(
    run_dir: Annotated[Path, typer.Argument(help="Run directory (or its model/ folder).")],
    texts: Annotated[Optional[list[str]], typer.Argument(help="Texts to classify.")] = None,
    text_opt: Annotated[Optional[list[str]], typer.Option("--text", "-t", help="A text to predict (repeatable; "
                                                          "same as a positional text).")] = None,
    input_: Annotated[Optional[Path], typer.Option("--input", "-i", help="File of texts: .txt (one per line), "
                                                   ".jsonl, .csv or .tsv.")] = None,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Write JSONL predictions here.")] = None,
    text_column: Annotated[Optional[str], typer.Option(help="Text column of --input (default: training's).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines instead of a table.")] = False,
    batch_size: Annotated[int, typer.Option(help="Texts per batch.")] = 64,
    question: Annotated[Optional[list[str]], typer.Option("--question", "-q", help="qa runs: a question "
                                                          "(repeatable), answered from --context.")] = None,
    context: Annotated[Optional[list[str]], typer.Option("--context", "-c", help="qa runs: the passage to answer "
                                                         "from: one for all questions, or one per --question. "
                                                         "--input takes a .jsonl of question/context rows or a "
                                                         "SQuAD-style .json.")] = None,
    guard_file: Annotated[Optional[Path], typer.Option("--guard", help="YAML of a guard: section applied to the "
                                                      "texts (default: the run's stored one; docs/trust.md).")]
    = None,
    debug: DebugOpt = False,
) -> None:
    """Label and probabilities for texts given as arguments or in a file; for a qa run, the answer span
    (answer, score, start, end) to each --question in its --context."""
    with _guard(debug):
        from .artifact import find_model_dir, load

        items = list(texts or []) + list(text_opt or [])
        model = load(run_dir)
        if Path(model.path).resolve() != find_model_dir(run_dir).resolve():
            typer.echo(f"note: predicting with {model.path}, the backend `lmkernel compare --select` chose "
                       f"for {run_dir}", err=True)
        if model.card["task"] == "qa" or question or context:
            items = _qa_items(model, items, question or [], context or [], input_)
            input_ = None
        if input_ is not None:
            column = text_column or model.card.get("data", {}).get("text_column", "text")
            items += texts_from_file(input_, column)
        if not items:
            raise LmkError("no texts to predict", where="predict", fix='pass texts ("great film") or --input FILE '
                           '(qa runs: --question Q --context C)')
        from .trust.guardrun import cli_guard, guard_predictions

        guard = cli_guard(model, guard_file) if items and isinstance(items[0], str) else None
        preds = model.predict(items, batch_size=batch_size) if guard is None else \
            guard_predictions(guard, items, lambda texts: model.predict(texts, batch_size=batch_size))
        lines = [json.dumps(p, ensure_ascii=False) for p in preds]
        if output is not None:
            from .fsutil import atomic_write_text

            atomic_write_text(output, "\n".join(lines) + "\n")
            typer.echo(f"wrote {len(preds)} predictions to {output}")
        elif as_json or (preds and "label" not in preds[0]):  # NER: entity spans print as JSON
            typer.echo("\n".join(lines))
        else:
            for p in preds:  # the trust profile's flags, when raised, after the text
                flags = [name for key, name in (("ood", "out-of-distribution"), ("low_confidence", "low confidence"))
                         if p.get(key)]
                shown = f"\t[{', '.join(flags)}]" if flags else ""
                typer.echo(f"{p['label']}\t{p['score']:.3f}\t{p['text']}{shown}")


@app.command()
def inspect(
    target: Annotated[Path, typer.Argument(help="A spec file (shows it fully resolved) or a run directory "
                                           "(shows its model card).")],
    set_: SetOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Show the fully resolved spec with every default, or an artifact's card."""
    with _guard(debug):
        from .artifact import CARD

        if target.is_dir() and ((target / "model" / CARD).exists() or (target / CARD).exists()):
            from .artifact import find_model_dir, read_card
            from .compress.backend import selected

            model_dir = find_model_dir(target)
            card = read_card(model_dir)
            chosen = selected(model_dir)
            if chosen:  # what predict/serve/load actually use, so a selected backend is never a surprise
                card["served_backend"] = {"loads": chosen["loads"], "selected_by": "lmkernel compare --select",
                                          "record": chosen["record"], "undo": f"delete {chosen['record']}"}
            typer.echo(json.dumps(card, indent=2, ensure_ascii=False))
            return
        from .spec import load_spec

        typer.echo(load_spec(target, set_ or []).to_yaml(), nl=False)


@app.command()
def validate(
    spec: Annotated[Path, typer.Argument(help="YAML spec file.")],
    set_: SetOpt = None,
    no_data: Annotated[bool, typer.Option("--no-data", help="Check the spec only: do not open its data files "
                                          "(by default their first rows are read to check columns and labels).")]
    = False,
    debug: DebugOpt = False,
) -> None:
    """Check a spec and a sample of its data without training; reports every problem at once."""
    with _guard(debug):
        from .spec import load_spec

        loaded = load_spec(spec, set_ or [])
        if not no_data:
            from .data.check import check_data

            for note in check_data(loaded):
                typer.echo(note)
        typer.echo(f"{spec}: ok")


@app.command()
@settings_options(_Serve)
def serve(
    run_dir: Annotated[Path, typer.Argument(help="Run directory (or its model/ folder) to serve.")],
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    host: Annotated[str, typer.Option(help="Address to bind; 0.0.0.0 exposes the server to the network.")]
    = "127.0.0.1",
    api_key_env: Annotated[Optional[str], typer.Option(help="Environment variable holding comma-separated "
                                                       "API keys; clients send 'Authorization: Bearer KEY'.")]
    = None,
    api_key_file: Annotated[Optional[Path], typer.Option(help="File with one API key per line; '#' at a line's "
                                                         "start or after a space starts a comment (a key may "
                                                         "contain '#').")]
    = None,
    access_log: Annotated[bool, typer.Option(help="Log every request, query strings redacted (off: /metrics "
                                             "counts them).")] = False,
    knowledge: Annotated[Optional[Path], typer.Option(help="Knowledge index (lmkernel index build): adds "
                                                      "/v1/search and /v1/embeddings, and chat completions answer "
                                                      "from its passages with citations.")] = None,
    embedder: Annotated[Optional[str], typer.Option(help="Embedding model for /v1/embeddings: a run, an alias "
                                                    "(minilm) or an encoder folder (default with --knowledge: the "
                                                    "index's model).")] = None,
    knowledge_k: Annotated[int, typer.Option(help="Passages a grounded answer gets.")] = _ANSWER_K,
    knowledge_min_score: Annotated[float, typer.Option(help="Best dense cosine among the passages below which a "
                                                       "grounded chat says it does not know (no model runs).")]
    = _ANSWER_MIN,
    knowledge_min_bm25: Annotated[Optional[float], typer.Option(help="Also say it does not know when the best "
                                                                "BM25 score is below this (off by default).")]
    = None,
    settings_values: dict | None = None,
    debug: DebugOpt = False,
) -> None:
    """Serve a model over HTTP: /v1/classify, /v1/entities or /v1/generate + OpenAI /v1/chat/completions and
    /v1/completions by task; /v1/models, /healthz, /readyz, /metrics (docs at /docs). The limits and batching
    flags are ServeSettings' fields (serve/settings.py: each default and its help are written there)."""
    with _guard(debug):
        from .serve.server import serve as run_server
        from .serve.settings import read_api_keys

        keys = read_api_keys(api_key_env, str(api_key_file) if api_key_file else None)
        settings = _Serve(**(settings_values or {}), api_keys=keys)
        served = None
        if knowledge is not None or embedder is not None:
            from .serve.knowledge import Knowledge

            served = Knowledge(knowledge, embedder, k=knowledge_k, min_score=knowledge_min_score,
                               min_bm25=knowledge_min_bm25)
        run_server(run_dir, host=host, port=port, settings=settings, access_log=access_log, knowledge=served)


def _compress_methods_help() -> str:
    from .compress import _METHODS

    return "; ".join(f"{m.name}: {m.summary}" for m in _METHODS.values())


# Measurement options shared by `compress` and `compare`.
MaxExamplesOpt = Annotated[Optional[int], typer.Option(min=1, help="Measure on the first N examples only.")]
MeasureBatchOpt = Annotated[int, typer.Option("--batch-size", min=1, help="Batch size of the throughput "
                                              "measurement.")]
LatencyOpt = Annotated[int, typer.Option(min=1, help="Single texts timed for the batch-1 latency.")]


def _method_flags():
    """The compression methods' own flags (compress.option_flags: each method's Options model)."""
    from .clikit import Flag
    from .compress import option_flags

    return with_flags([Flag(name, annotation, None, help) for name, annotation, help in option_flags()])


@app.command()
@_method_flags()
def compress(
    run_dir: Annotated[Path, typer.Argument(help="Run directory (or its model/ folder) to compress.")],
    method: Annotated[str, typer.Option("--method", "-m", help="Compression method. "
                                        + _compress_methods_help())],
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Folder for the new run (model/, "
                                                "compression.md, compression.json); default RUN-METHOD. An "
                                                "existing run is never overwritten.")] = None,
    quantize: Annotated[Optional[str], typer.Option(help="Also quantize the result (onnx: int8).")] = None,
    data: Annotated[Optional[Path], typer.Option("--data", "-d", help="Labelled file to measure on, or a spec "
                                                 "YAML (its validation set; distill and prune also train on its "
                                                 "data). Default: the run's spec.yaml.")] = None,
    max_examples: MaxExamplesOpt = None,
    batch_size: MeasureBatchOpt = 32,
    latency_samples: LatencyOpt = 100,
    quiet: QuietOpt = False,
    settings_values: dict | None = None,
    debug: DebugOpt = False,
) -> None:
    """Make a smaller, faster copy of a model and report size, speed and accuracy before and after."""
    with _guard(debug):
        from .compress.workflow import compress as run_compress

        result = run_compress(run_dir, method, out, data=data, max_examples=max_examples, batch_size=batch_size,
                              latency_samples=latency_samples, log=_log(quiet), progress=not quiet, quantize=quantize,
                              **(settings_values or {}))
        typer.echo(result.table)
        typer.echo(f"run:    {result.out_dir}")
        typer.echo(f"report: {result.out_dir / 'compression.md'}")


@app.command()
def compare(
    runs: Annotated[list[Path], typer.Argument(help="Run directories to compare; ratios are against the first.")],
    data: Annotated[Optional[Path], typer.Option("--data", "-d", help="Labelled file to measure on (default: the "
                                                 "first run's validation set).")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for compare.md, compare.json and "
                                      "compare.png.")] = Path("compare"),
    max_examples: MaxExamplesOpt = None,
    batch_size: MeasureBatchOpt = 32,
    latency_samples: LatencyOpt = 100,
    select: Annotated[bool, typer.Option("--select", help="Make each original run serve the fastest of its "
                                         "measured runtime copies (int8, onnx) whose accuracy is within 1 point: "
                                         "predict, serve and lmkernel.load then use it (written to "
                                         "RUN/backends.json; inspect shows it). Without it nothing changes.")]
    = False,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Size, latency, throughput and accuracy of several artifacts on the same data; table and plot."""
    with _guard(debug):
        from .compress.compare import compare as run_compare

        result = run_compare(runs, data, out, max_examples=max_examples, batch_size=batch_size,
                             latency_samples=latency_samples, log=_log(quiet), select=select, progress=not quiet)
        typer.echo(result.table)
        for line in result.backends:
            typer.echo(line)
        typer.echo(f"plot:   {result.out_dir / 'compare.png'}")


def _stream_reply(stream, out) -> dict:
    """Print a reply piece by piece as the model produces it; return its result dict."""
    for piece in stream:
        out.write(piece)
        out.flush()
    out.write("\n")
    return stream.result or {}


@app.command()
def generate(
    model: Annotated[str, typer.Argument(help="Run directory, model alias (smollm2) or local Hugging Face "
                                         "causal-LM folder.")],
    prompt: Annotated[Optional[str], typer.Argument(help="Prompt (chat-templated unless --raw).")] = None,
    chat: Annotated[bool, typer.Option("--chat", help="Interactive conversation: one prompt per line, "
                                       "/reset starts over, /exit or Ctrl-D quits.")] = False,
    temperature: Annotated[float, typer.Option(help="0 = greedy; higher = more random.")] = 0.0,
    top_p: Annotated[float, typer.Option(help="Nucleus sampling mass (1 = off).")] = 1.0,
    top_k: Annotated[int, typer.Option(help="Sample among the k likeliest tokens (0 = off).")] = 0,
    max_new_tokens: Annotated[int, typer.Option(help="Most tokens to generate per reply.")] = 256,
    repetition_penalty: Annotated[float, typer.Option(help="> 1 discourages repeating tokens (1 = off).")] = 1.0,
    stop: Annotated[Optional[list[str]], typer.Option("--stop", help="Stop before this text (repeatable).")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Seed for sampling (same seed, same text).")] = None,
    system: Annotated[Optional[str], typer.Option(help="System message (default: the run's system_prompt).")]
    = None,
    raw: Annotated[bool, typer.Option("--raw", help="Feed the prompt as-is, without the chat template or the run's "
                                      "system prompt.")] = False,
    guard_file: Annotated[Optional[Path], typer.Option("--guard", help="YAML of a guard: section applied to the "
                                                      "prompt and the reply (default: the run's stored one; a "
                                                      "guarded reply prints once checked).")] = None,
    debug: DebugOpt = False,
) -> None:
    """Generate text with a causal LM, streaming tokens to stdout as they come."""
    with _guard(debug):
        from .artifact import load_generator
        from .generation import Conversation, sampling

        params = sampling(temperature=temperature, top_p=top_p, top_k=top_k, max_new_tokens=max_new_tokens,
                          repetition_penalty=repetition_penalty, stop=stop or (), seed=seed)
        if not chat and prompt is None:
            raise LmkError("no prompt given", where="generate", fix='pass a prompt ("Hello!") or use --chat')
        lm = load_generator(model)
        kwargs = {k: getattr(params, k) for k in params.__dataclass_fields__}
        from .trust.guardrun import CliGuard

        guard = CliGuard.of(lm, guard_file)
        if not chat:
            stream = lm.stream(guard.input(prompt), raw=raw, **({"system": system} if system else {}), **kwargs)
            guard.reply(lambda out: _stream_reply(stream, out))
            return
        lm._check_generative()
        talk = Conversation(system=system, style=lm.prompt_style)
        typer.echo("chat: type a message; /reset starts over, /exit quits", err=True)
        first = [prompt] if prompt else []
        while True:
            line = first.pop() if first else sys.stdin.readline()
            if not line or line.strip() == "/exit":
                break
            if line.strip() == "/reset":
                talk.messages.clear()
                continue
            if line.strip():
                asked = talk.ask(lm._generator(), lm.tokenizer, guard.input(line.strip()), **kwargs)
                talk.answered(guard.reply(lambda out, s=asked: _stream_reply(s, out)))


@app.command()
def fields(section: Optional[str] = typer.Argument(  # noqa: UP007 (typer reads the annotation)
        None, help="Only keys under this section, e.g. tuning or tuning.lora (default: every key).")) -> None:
    """List every spec key with its default and meaning."""
    from .spec import describe_fields

    rows = [r for r in describe_fields() if section is None or r[0] == section or r[0].startswith(section + ".")]
    if not rows:
        raise typer.BadParameter(f"no spec key under {section!r} (sections: seed, task, data, model, tokenizer, guard, "
                                 "tuning, train, output)", param_hint="SECTION")
    for key, default, desc in rows:
        typer.echo(f"{key:32} {default:24} {desc}")


def _knowledge_commands() -> None:
    from .commands.knowledge import index_app, search

    app.add_typer(index_app, name="index")
    app.command(help="Search a knowledge index: the best chunks for a query (or --input file), with sources.")(search)


_knowledge_commands()

from .commands.ask import ask as _ask  # noqa: E402 (its own module; registered here with the others)

app.command("ask")(_ask)


from .commands.app import app_cli  # noqa: E402  (command groups in their own modules)
from .commands.guard import guard as _guard_cmd  # noqa: E402
from .commands.recommend import recommend as _recommend  # noqa: E402

app.add_typer(app_cli, name="app")
app.command("recommend")(_recommend)
app.command("guard")(_guard_cmd)

from .commands.monitor import register as _register_monitor  # noqa: E402  (monitor, alerts check|export)

_register_monitor(app)
from .commands.audit import audit_app  # noqa: E402  (audit verify)

app.add_typer(audit_app, name="audit")
from .commands.explain import explain as _explain  # noqa: E402

app.command("explain")(_explain)
from .commands.runs import RUNS_HELP  # noqa: E402
from .commands.runs import runs as _runs  # noqa: E402

app.command("runs", help=RUNS_HELP)(_runs)
from .commands.tune import tune as _tune  # noqa: E402  (hyperparameter search)

app.command("tune")(_tune)
from .commands.console import console as _console  # noqa: E402

app.command("console")(_console)


def main() -> None:  # console-script entry point
    try:
        app()
    except LmkError as e:  # raised outside a guard (should not happen, but never show a traceback)
        typer.secho("error: " + e.render(), fg=typer.colors.RED, err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
