"""`lmkernel index build|add|delete|info` and `lmkernel search`: parse, call the index, print."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..clikit import DebugOpt, QuietOpt, _guard
from ..errors import LmkError
from ..knowledge.chunking import CHUNK_CHARS, OVERLAP

index_app = typer.Typer(help="Build and update a knowledge index (BM25 + dense vectors) over documents.",
                        no_args_is_help=True)

DocsArg = Annotated[list[Path], typer.Argument(help="Documents: .txt/.md files (one document each), .jsonl/.csv "
                                               "(one document per line/row), or folders of them (recursive).")]
IdxArg = Annotated[Path, typer.Argument(help="The index directory.")]
TextField = Annotated[Optional[str], typer.Option("--text-field", help="The .jsonl key / .csv column holding the "
                                                  "text (default: text; add: the index's).")]
IdField = Annotated[Optional[str], typer.Option("--id-field", help="The .jsonl key / .csv column holding the "
                                                "document id (default: id; without one, file:line is the id).")]
OnBad = Annotated[Optional[str], typer.Option("--on-bad", help="What to do with unreadable input (empty, binary, "
                                              "not UTF-8, over 50 MiB, bad JSON line, no text): skip = count and "
                                              "list it, error = stop at the first one (default: skip).")]


def _report(stats, verb: str) -> None:
    typer.echo(f"{verb} {stats.documents} document(s) as {stats.chunks} chunk(s) in {stats.seconds:.1f}s "
               f"({stats.chunks_per_s:.0f} chunks/s); index {stats.path} now holds {stats.total_chunks} chunk(s) "
               f"[{stats.generation}]")
    if stats.replaced:
        typer.echo(f"replaced {stats.replaced} document(s) that were already indexed")
    if stats.skipped:
        typer.echo(f"skipped {len(stats.skipped)} input(s):", err=True)
        for skip in stats.skipped[:20]:
            typer.echo(f"  {skip.render()}", err=True)
        if len(stats.skipped) > 20:
            typer.echo(f"  ... and {len(stats.skipped) - 20} more", err=True)


@index_app.command()
def build(
    docs: DocsArg,
    out: Annotated[Path, typer.Option("--out", "-o", help="The index directory to write (replaced atomically "
                                      "if it exists).")],
    model: Annotated[Optional[str], typer.Option("--model", "-m", help="Embedding model: a run of the embedding "
                                                 "task, a model alias (minilm) or a local encoder folder "
                                                 "(default: chosen by the documents' language).")] = None,
    chunk_chars: Annotated[int, typer.Option("--chunk-chars", help="Chunk size in characters (a Han character "
                                             "counts twice).")] = CHUNK_CHARS,
    overlap: Annotated[int, typer.Option("--overlap", help="Characters of trailing sentences repeated at the "
                                         "start of the next chunk.")] = OVERLAP,
    text_field: TextField = None,
    id_field: IdField = None,
    on_bad: OnBad = None,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Read, chunk, embed and index documents into a new index."""
    with _guard(debug):
        from ..knowledge.index import build_index

        stats = build_index(docs, out, model, chunk_chars=chunk_chars, overlap=overlap, text_field=text_field or "text",
                            id_field=id_field or "id", on_bad=on_bad or "skip", progress=not quiet)
        _report(stats, "indexed")


@index_app.command()
def add(idx: IdxArg, docs: DocsArg, text_field: TextField = None, id_field: IdField = None, on_bad: OnBad = None,
        quiet: QuietOpt = False, debug: DebugOpt = False) -> None:
    """Add documents (only they are embedded); one with an id already indexed replaces it."""
    with _guard(debug):
        from ..knowledge.index import add_documents

        stats = add_documents(idx, docs, text_field=text_field, id_field=id_field, on_bad=on_bad, progress=not quiet)
        _report(stats, "added")


@index_app.command()
def delete(idx: IdxArg, ids: Annotated[list[str], typer.Argument(help="Document ids to remove (a file's id is "
                                                                  "its name; see `index info`).")],
           debug: DebugOpt = False) -> None:
    """Remove documents by id, without re-embedding the rest."""
    with _guard(debug):
        from ..knowledge.index import delete_documents

        removed = delete_documents(idx, ids)
        typer.echo(f"deleted {removed} of {len(set(ids))} document(s) from {idx}")
        if removed < len(set(ids)):
            typer.echo("some ids were not in the index", err=True)


@index_app.command()
def info(idx: IdxArg, as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
         debug: DebugOpt = False) -> None:
    """What an index holds: model, counts, languages, settings."""
    with _guard(debug):
        from ..knowledge.index import open_index

        data = open_index(idx).info()
        if as_json:
            typer.echo(json.dumps(data, ensure_ascii=False, indent=2))
            return
        for key, value in data.items():
            typer.echo(f"{key:11} {json.dumps(value, ensure_ascii=False) if isinstance(value, dict) else value}")


def parse_filters(items: list[str] | None) -> dict[str, list[str]] | None:
    """``--filter`` values, ``["lang=en", "kind=card", "kind=loan"]`` -> ``{"lang": ["en"], "kind": ["card",
    "loan"]}`` (a key given twice matches either); None when there are none."""
    out: dict[str, list[str]] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise LmkError(f"--filter {item!r} is not key=value", where="--filter", fix="e.g. --filter lang=zh")
        out.setdefault(key.strip(), []).append(value.strip())
    return out or None


def search(
    idx: IdxArg,
    query: Annotated[Optional[str], typer.Argument(help="The query (or give --input).")] = None,
    k: Annotated[int, typer.Option("--k", "-k", help="How many hits per query.")] = 5,
    mode: Annotated[str, typer.Option("--mode", help="hybrid (BM25 and dense fused by reciprocal rank), bm25 "
                                      "or dense.")] = "hybrid",
    filter_: Annotated[Optional[list[str]], typer.Option("--filter", "-f", help="Only documents whose metadata "
                                                         "field equals a value: key=value (repeat a key for "
                                                         "any-of; doc_id works too).")] = None,
    input_: Annotated[Optional[Path], typer.Option("--input", "-i", help="A file of queries, one per line, "
                                                   "answered in one process.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print each query's hits as one JSON list per line "
                                          "(text, score, source, chunk_id, doc_id, meta).")] = False,
    debug: DebugOpt = False,
) -> None:
    """Search an index: the best chunks for a query, with their sources."""
    with _guard(debug):
        from ..knowledge.index import open_index

        queries = [query] if query else []
        if input_ is not None:
            queries += [q.strip() for q in input_.read_text(encoding="utf-8").splitlines() if q.strip()]
        if not queries:
            raise LmkError("no query", where="search", fix='pass a query ("how do I reset it?") or --input FILE')
        index = open_index(idx)
        results = index.search_many(queries, k=k, filters=parse_filters(filter_), mode=mode)
        for q, hits in zip(queries, results):
            if as_json:
                typer.echo(json.dumps([h.to_json() for h in hits], ensure_ascii=False))
                continue
            if len(queries) > 1:
                typer.echo(f"# {q}")
            if not hits:
                typer.echo("(no hits)" if len(index) else "(the index is empty)")
            for n, h in enumerate(hits, start=1):
                text = " ".join(h.text.split())
                typer.echo(f"{n}. [{h.score:.4f}] {h.source} ({h.chunk_id})\n   {text[:200]}")
