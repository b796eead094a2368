"""End-to-end: `lmkernel index build|add|delete|info` and `lmkernel search` on the tiny BERT."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from lmkernel.cli import app

runner = CliRunner()


def cli(*args: str, code: int = 0):
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == code, result.output
    return result


def test_index_commands_and_search(tmp_path, tiny_bert):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "guide.md").write_text("# Returns\n\nReturn the item within thirty days.\n\n"
                                   "# Delivery\n\nParcels arrive in two days.\n", encoding="utf-8")
    (docs / "faq.jsonl").write_text('{"id": "f1", "text": "发票可以在订单页面下载。", "lang": "zh"}\n{oops\n',
                                    encoding="utf-8")
    idx = tmp_path / "idx"
    out = cli("index", "build", docs, "--out", idx, "--model", tiny_bert, "--chunk-chars", "40", "--overlap", "0", "-q")
    assert "indexed 2 document(s) as 4 chunk(s)" in out.output and "faq.jsonl:2: not valid JSON" in out.output
    info = json.loads(cli("index", "info", idx, "--json").output)
    assert info["counts"] == {"documents": 2, "chunks": 4} and info["settings"]["chunk_chars"] == 40

    hits = json.loads(cli("search", idx, "parcels arrive", "--json", "--k", "2", "--mode", "bm25").output)
    assert hits[0]["source"] == "guide.md:5" and hits[0]["chunk_id"] == "guide.md#2"
    assert set(hits[0]) >= {"text", "score", "source", "chunk_id"}
    zh = json.loads(cli("search", idx, "发票", "--json", "--filter", "lang=zh").output)
    assert [h["source"] for h in zh] == ["f1"]

    queries = tmp_path / "q.txt"
    queries.write_text("return item\n\n发票下载\n", encoding="utf-8")
    lines = cli("search", idx, "--input", queries, "--json", "-k", "1").output.strip().splitlines()
    assert len(lines) == 2 and all(len(json.loads(line)) == 1 for line in lines)
    assert "guide.md" in cli("search", idx, "return item").output

    (docs / "more.txt").write_text("Gift wrapping costs two euros.\n", encoding="utf-8")
    out = cli("index", "add", idx, docs / "more.txt", "-q")
    assert "added 1 document(s) as 1 chunk(s)" in out.output and "now holds 5 chunk(s)" in out.output
    assert "deleted 1 of 2" in cli("index", "delete", idx, "guide.md", "nope").output
    assert json.loads(cli("index", "info", idx, "--json").output)["counts"] == {"documents": 2, "chunks": 2}


def test_cli_errors_are_clean(tmp_path):
    out = cli("search", tmp_path / "none", "q", code=2)
    assert "no index at" in out.output and "Traceback" not in out.output
    out = cli("index", "build", tmp_path / "missing.txt", "--out", tmp_path / "i", code=2)
    assert "no such file" in out.output
    out = cli("search", tmp_path, "q", "--filter", "novalue", code=2)
    assert "key=value" in out.output or "not an lmkernel index" in out.output
