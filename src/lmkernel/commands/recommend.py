"""`lmkernel recommend`: rank catalogue items for a user from the texts of their history."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..clikit import DebugOpt, _guard
from ..errors import LmkError
from .knowledge import parse_filters  # the same --filter as search and ask


def _history(texts: list[str] | None, file: Path | None) -> list[str]:
    history = list(texts or [])
    if file is not None:
        try:
            history += [line for line in file.read_text(encoding="utf-8").splitlines() if line.strip()]
        except (OSError, UnicodeDecodeError) as e:
            raise LmkError(f"cannot read the history file {file}: {e}", where="--history-file",
                           fix="pass a UTF-8 text file with one entry (a text or an item id) per line") from None
    return history


def recommend(
    items: Annotated[list[Path], typer.Argument(help="The catalogue: .jsonl/.csv (one item per line/row: its id in "
                                                "--id-field, its text in --text-field, other keys are metadata for "
                                                "--filter), .txt/.md files (one item each) or folders of them.")],
    history: Annotated[Optional[list[str]], typer.Option("--history", "-H", help="What the user read, bought or "
                                                         "asked, oldest first: a text, or the id of a catalogue item "
                                                         "(repeatable).")] = None,
    history_file: Annotated[Optional[Path], typer.Option("--history-file", help="The same, one entry per line "
                                                         "(after any --history).")] = None,
    k: Annotated[int, typer.Option("--k", help="Items to recommend.")] = 10,
    filters: Annotated[Optional[list[str]], typer.Option("--filter", help="Only items whose metadata has this "
                                                         "value, key=value (repeat a key for any of several "
                                                         "values).")] = None,
    model: Annotated[Optional[str], typer.Option("--model", "-m", help="Embedding model: a run of the embedding "
                                                 "task, a model alias or a local encoder folder (default "
                                                 "minilm).")] = None,
    text_field: Annotated[str, typer.Option("--text-field", help="The .jsonl key / .csv column with the item's "
                                            "text.")] = "text",
    id_field: Annotated[str, typer.Option("--id-field", help="The .jsonl key / .csv column with the item's "
                                          "id.")] = "id",
    dedup: Annotated[float, typer.Option("--dedup", help="Leave out an item whose cosine with a better-ranked one "
                                         "is above this (1 keeps near-duplicates).")] = 0.95,
    recency: Annotated[float, typer.Option("--recency", help="Weight of each history entry relative to the next "
                                           "one (1: all alike; less favours recent entries).")] = 0.8,
    keep_seen: Annotated[bool, typer.Option("--keep-seen", help="Also recommend items the history already "
                                            "names.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list of {id, text, score, because, "
                                          "meta}.")] = False,
    debug: DebugOpt = False,
) -> None:
    """Recommend catalogue items for a user: the items closest to their history's texts, each with the history
    entry that explains it; seen items, filtered-out items and near-duplicates are left out."""
    with _guard(debug):
        from ..knowledge.documents import read_documents
        from ..knowledge.embedder import load_embedder
        from ..knowledge.recommend import Item
        from ..knowledge.recommend import recommend as rank

        docs, skipped = read_documents(list(items), text_field, id_field, "skip")
        for skip in skipped[:20]:
            typer.echo(f"skipped {skip.render()}", err=True)
        if not docs:
            raise LmkError("the catalogue holds no item", where=", ".join(map(str, items)),
                           fix="give a .jsonl/.csv with a text per item (see --text-field)")
        catalogue = [Item(d.doc_id, d.text, dict(d.meta)) for d in docs]
        recs = rank(catalogue, _history(history, history_file), load_embedder(model), k=k,
                    filters=parse_filters(filters), exclude_seen=not keep_seen, dedup=dedup, recency=recency)
        if as_json:
            typer.echo(json.dumps([r.to_json() for r in recs], ensure_ascii=False))
            return
        for n, r in enumerate(recs, 1):
            typer.echo(f"{n:>2}. {r.id}  {r.score:.3f}  {r.text[:100]}")
            typer.echo(f"    because: {r.because[:100]}")
