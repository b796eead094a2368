"""`lmkernel explain` end to end (--json, --html, --png, errors) and POST /v1/explain: the same answer
from the CLI, Python and the server."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import lmkernel
from lmkernel.cli import app
from lmkernel.trust.explain import explain

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "serve"))

TEXTS = ["the film was superb", "the room was horrible"]


def _cli(*args: str):
    return CliRunner().invoke(app, ["explain", *args])


def test_json_html_png(sentiment_run, tmp_path):
    html, png = tmp_path / "e.html", tmp_path / "e.png"
    result = _cli(str(sentiment_run), *TEXTS, "--json", "--html", str(html), "--png", str(png))
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.splitlines()]
    assert rows == lmkernel.load(sentiment_run).explain(TEXTS) == explain(lmkernel.load(sentiment_run), TEXTS)
    for row in rows:
        assert {"label", "words", "comprehensiveness", "sufficiency", "comprehensiveness_random",
                "sufficiency_random"} <= set(row)
        assert all(set(w) == {"word", "start", "end", "score"} for w in row["words"])
    page = html.read_text(encoding="utf-8")
    assert "superb</span>" in page and "<script" not in page
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_input_file_label_and_plain_output(sentiment_run, tmp_path):
    f = tmp_path / "in.txt"
    f.write_text("the book was good\n\n<b>bad</b> room\n", encoding="utf-8")
    result = _cli(str(sentiment_run), "--input", str(f), "--label", "negative", "--method", "occlusion")
    assert result.exit_code == 0, result.output
    assert result.output.count("'negative'") == 2 and "comprehensiveness" in result.output
    html = tmp_path / "x.html"
    assert _cli(str(sentiment_run), "--input", str(f), "--html", str(html)).exit_code == 0
    page = html.read_text(encoding="utf-8")
    assert "</b> room" not in page and "&lt;" in page  # model input is escaped, never markup


@pytest.mark.parametrize("args,message", [
    (["{missing}", "text"], "{missing}"),
    (["{run}", "   "], "text 1 is empty"),
    (["{run}", "good", "--label", "neutral"], "not one of this model's labels"),
    (["{run}"], "no text to explain"),
    (["{run}", "good", "--method", "shap"], "unknown explanation method"),
    (["{run}", "--input", "{missing}.txt"], "no such file"),
])
def test_errors_are_one_message_with_a_fix(sentiment_run, tmp_path, args, message):
    fill = {"run": str(sentiment_run), "missing": str(tmp_path / "nope")}
    result = _cli(*[a.format(**fill) for a in args])
    assert result.exit_code == 2
    assert message.format(**fill) in result.output and "fix:" in result.output
    assert "Traceback" not in result.output


def test_server_route_answers_like_the_cli(sentiment_run):
    from serve_helpers import serving

    from lmkernel.serve.predictor import ClassifierPredictor
    from lmkernel.serve.routes.explain import mount

    handle = lmkernel.load(sentiment_run)
    expected = explain(handle, TEXTS, label="positive")
    served = lmkernel.load(sentiment_run)  # the predictor packs its model for speed; explanations load their own
    with serving(lambda: ClassifierPredictor(served), max_wait_ms=2) as client:
        assert mount(client.app, sentiment_run, "classification")
        r = client.post("/v1/explain", json={"texts": TEXTS, "label": "positive"})
        assert r.status_code == 200, r.text
        assert r.json()["results"] == expected
        bad = client.post("/v1/explain", json={"texts": TEXTS, "label": "neutral"})
        assert bad.status_code == 422 and "labels" in bad.json()["error"]["message"]
        assert client.post("/v1/explain", json={"texts": []}).status_code == 422
