"""The console's API without a browser: keys, Host checks, spec checks, runs and reports, jobs, playground."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from conftest import KEY, SERVER_KEY, call, make_study, spec_text
from fastapi.testclient import TestClient

from lmkernel.console import create_console

AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture()
def client(console_home):
    app = create_console(console_home / "runs", base=console_home, api_keys=frozenset({KEY}))
    with TestClient(app, base_url="http://127.0.0.1:7860", headers=AUTH) as c:
        yield c


def test_api_refuses_missing_and_wrong_keys_but_serves_the_page(console_home):
    app = create_console(console_home / "runs", base=console_home, api_keys=frozenset({KEY}))
    with TestClient(app, base_url="http://127.0.0.1:7860") as c:
        assert c.get("/api/runs").status_code == 401
        wrong = c.get("/api/runs", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401 and wrong.json()["error"]["message"] == "invalid API key"
        assert c.get("/api/runs", headers=AUTH).status_code == 200
        page = c.get("/")
        assert page.status_code == 200 and "/static/app.js" in page.text
        assert c.get("/static/app.js").headers["content-type"].startswith("text/javascript")
        assert c.get("/static/..%2Fapp.py").status_code == 404


def test_host_header_of_another_name_is_refused(client):
    refused = client.get("/", headers={"Host": "evil.example"})
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "Host"
    assert client.get("/", headers={"Host": "localhost:7860"}).status_code == 200


def test_runs_report_and_compare(client):
    rows = {r["id"]: r for r in client.get("/api/runs").json()}
    assert rows["tiny"]["status"] == "done" and rows["tiny"]["task"] == "classification" and "path" not in rows["tiny"]
    report = client.get("/api/report", params={"run": "tiny"}).json()
    assert report["confusion"]["test"]["labels"] == ["negative", "positive"]
    assert sum(map(sum, report["confusion"]["test"]["matrix"])) == 40
    assert "accuracy" in report["metrics"]["test"] and "loss.png" in report["plots"]
    assert report["errors"]["columns"][:3] == ["split", "line", "text"]
    png = client.get("/api/plot", params={"run": "tiny", "name": "loss.png"})
    assert png.status_code == 200 and png.content[:4] == b"\x89PNG"
    assert client.get("/api/plot", params={"run": "tiny", "name": "../spec.yaml"}).status_code == 404
    assert client.get("/api/report", params={"run": "../.."}).status_code == 404
    both = client.get("/api/compare", params={"runs": "tiny,chat"}).json()
    assert both["runs"] == ["tiny", "chat"] and len(both["histories"][0]) > 3
    assert client.get("/api/compare", params={"runs": "tiny"}).status_code == 422


def test_spec_check_names_the_line_and_the_fix(client, tiny_bert):
    bad = client.post("/api/spec/check", json={"text": "task: {type: clasification}\ndata: {train: x.csv}\n"}).json()
    assert not bad["ok"]
    first = bad["problems"][0]
    assert first["line"] == 1 and "clasification" in first["what"] and "classification" in first["fix"]
    broken = client.post("/api/spec/check", json={"text": "task: [\n"}).json()
    assert broken["problems"][0]["what"].startswith("spec is not valid YAML")
    good = client.post("/api/spec/check", json={"text": spec_text(tiny_bert), "data": True}).json()
    assert good["ok"] and any("160 usable row" in n for n in good["notes"])  # data/ read relative to home


def test_predict_explains_and_chat_streams(client):
    out = client.post("/api/predict", json={"run": "tiny", "text": "the film was great"}).json()
    assert out["prediction"]["label"] in ("positive", "negative")
    assert [w["word"] for w in out["explanation"]["words"]] == ["the", "film", "was", "great"]
    refused = client.post("/api/predict", json={"run": "chat", "text": "hi"})
    assert refused.status_code == 422 and "chat" in refused.json()["error"]["message"]
    with client.stream("POST", "/api/chat", json={"run": "chat", "messages": [{"role": "user", "content": "hello"}],
                                                  "max_new_tokens": 6}) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        events = [json.loads(line[6:]) for line in r.iter_lines() if line.startswith("data: ")]
    assert events[-1]["done"] and events[-1]["tokens"] >= 1
    assert client.post("/api/chat", json={"run": "tiny", "messages": [{"role": "user", "content": "x"}]}
                       ).status_code == 422


def test_monitor_proxy_refuses_bad_urls_and_reports_unreachable(client):
    assert client.post("/api/monitor", json={"url": "file:///etc/passwd"}).status_code == 422
    gone = client.post("/api/monitor", json={"url": "http://127.0.0.1:9"})
    assert gone.status_code == 502 and "cannot reach" in gone.json()["error"]["message"]


def _wait(predicate, timeout: float = 600.0, what: str = "") -> None:  # a loaded 2-core box
    end = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.5)


def test_job_starts_stops_resumable_and_resumes(client, console_home, tiny_bert):
    runs: Path = console_home / "runs"
    text = spec_text(tiny_bert, epochs=4, checkpoint_every=2)
    assert client.post("/api/jobs/nope/resume", json={}).status_code == 422
    started = client.post("/api/jobs", json={"name": "job1", "text": text})
    assert started.status_code == 200 and started.json()["running"]
    assert client.post("/api/jobs", json={"name": "job1", "text": text}).status_code == 409
    _wait(lambda: (runs / "job1" / "checkpoints").is_dir(), what="a first checkpoint")
    stopped = client.post("/api/jobs/job1/stop", json={}).json()
    assert not stopped["running"] and stopped["exit_code"] != 0
    row = next(r for r in client.get("/api/runs").json() if r["id"] == "job1")
    assert row["status"] == "resumable", row
    assert client.post("/api/jobs/job1/stop", json={}).status_code == 422
    assert client.post("/api/jobs/job1/resume", json={}).json()["running"]
    _wait(lambda: not client.get("/api/jobs").json()[0]["running"], what="the resumed run to end")
    job = client.get("/api/jobs").json()[0]
    assert job["exit_code"] == 0, job["log"]
    row = next(r for r in client.get("/api/runs").json() if r["id"] == "job1")
    assert row["status"] == "done" and row["steps"] == 40
    assert (runs / ".console" / "jobs" / "job1.log").stat().st_size > 0


def test_bad_job_names_and_specs_are_refused(client):
    bad_name = client.post("/api/jobs", json={"name": "../x", "text": "task: {type: classification}"})
    assert bad_name.status_code == 422 and "plain folder name" in bad_name.json()["error"]["message"]
    bad_spec = client.post("/api/jobs", json={"name": "ok-name", "text": "task: [\n"})
    assert bad_spec.status_code == 422 and "not valid YAML" in bad_spec.json()["error"]["message"]


def test_missing_runs_and_index_folders_are_404(client):
    assert client.post("/api/predict", json={"run": "nope", "text": "x"}).status_code == 404
    missing = client.post("/api/search", json={"index": "no-such-index", "query": "x"})
    assert missing.status_code == 404 and missing.json()["error"]["param"] == "index"
    outside = client.post("/api/search", json={"index": "/etc", "query": "x"})
    assert outside.status_code == 404


def test_console_command_refuses_a_file_and_an_unset_key_variable(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from lmkernel.cli import app

    afile = tmp_path / "runs.txt"
    afile.write_text("x", encoding="utf-8")
    out = CliRunner().invoke(app, ["console", str(afile)])
    assert out.exit_code == 2 and "is not a folder" in out.output
    monkeypatch.delenv("LMK_UNSET_KEYS", raising=False)
    out = CliRunner().invoke(app, ["console", str(tmp_path), "--api-key-env", "LMK_UNSET_KEYS"])
    assert out.exit_code == 2 and "LMK_UNSET_KEYS" in out.output
    out = CliRunner().invoke(app, ["console", str(tmp_path), "--server", "ftp://box:21"])
    assert out.exit_code == 2 and "not a server URL" in out.output
    out = CliRunner().invoke(app, ["console", str(tmp_path), "--server-key-env", "LMK_UNSET_KEYS"])
    assert out.exit_code == 2 and "without --server" in out.output
    out = CliRunner().invoke(app, ["console", str(tmp_path), "--server", "http://127.0.0.1:8000",
                                   "--server-key-env", "LMK_UNSET_KEYS"])
    assert out.exit_code == 2 and "LMK_UNSET_KEYS is not set" in out.output


def test_study_trials_best_history_and_a_running_trial(tmp_path):
    import optuna

    make_study(tmp_path / "search")
    (tmp_path / "search" / "best.yaml").write_text("task: {type: classification}\n", encoding="utf-8")
    (tmp_path / "search" / "trials" / "0003" / "spec.yaml").write_text("task: {type: classification}\n")
    with TestClient(create_console(tmp_path), base_url="http://127.0.0.1") as c:
        assert c.get("/api/studies").json() == [{"id": "search", "trials": 5, "best": True}]
        s = c.get("/api/study", params={"id": "search"}).json()
        assert s["metric"] == "accuracy" and s["direction"] == "maximize" and s["searching"]
        assert [t["state"] for t in s["trials"]] == ["complete", "pruned", "fail", "complete", "running"]
        assert s["counts"] == {"complete": 2, "pruned": 1, "fail": 1, "running": 1}
        assert s["trials"][0]["params"]["train.batch_size"] == 16 and s["trials"][0]["run"] is None  # no spec.yaml
        assert s["trials"][3]["run"] == "search/trials/0003"  # a trial's run dir opens as a run
        assert s["history"] == [[0, 0.6], [3, 0.7]] and s["best_so_far"] == [[0, 0.6], [3, 0.7]]
        assert s["best"]["number"] == 3 and s["best"]["value"] == 0.7
        running = s["trials"][4]
        assert running["intermediate"] == [[100, 0.65]] and running["value"] == 0.65
        assert running["progress"] == {"step": 5, "total_steps": 20}
        # the search goes on: the next poll sees the running trial end, and the best move
        study = optuna.load_study(study_name="lmkernel", storage=f"sqlite:///{tmp_path / 'search' / 'study.db'}")
        study.tell(4, 0.8)
        s = c.get("/api/study", params={"id": "search"}).json()
        assert not s["searching"] and s["best"]["number"] == 4 and s["best_so_far"][-1] == [4, 0.8]
        assert c.get("/api/study", params={"id": "../.."}).status_code == 404
        assert c.get("/api/study", params={"id": "nope"}).status_code == 404


def test_a_study_in_a_folder_named_with_a_space_and_percent(tmp_path):
    make_study(tmp_path / "lr search 50%")  # percent-encoded in the read-only SQLite URI
    with TestClient(create_console(tmp_path), base_url="http://127.0.0.1") as c:
        s = c.get("/api/study", params={"id": "lr search 50%"}).json()
        assert len(s["trials"]) == 5 and s["best"]["number"] == 3


def test_a_study_db_that_is_not_a_study_is_422(tmp_path):
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "study.db").write_bytes(b"not a database at all" * 100)
    with TestClient(create_console(tmp_path), base_url="http://127.0.0.1") as c:
        bad = c.get("/api/study", params={"id": "junk"})
        assert bad.status_code == 422 and "not a study" in bad.json()["error"]["message"]


def test_served_model_answers_are_the_servers_own(console_home, tiny_server):
    text = {"texts": ["the film was great", "the hotel was awful"]}
    app = create_console(console_home / "runs", base=console_home, api_keys=frozenset({KEY}),
                         server=tiny_server, server_key=SERVER_KEY)
    with TestClient(app, base_url="http://127.0.0.1:7860", headers=AUTH) as c:
        assert c.get("/api/settings").json() == {"server": tiny_server, "server_key": True}
        for path, body in (("/v1/classify", text), ("/v1/explain", {"texts": ["the film was great"]}),
                           ("/v1/models", None)):
            via = c.post("/api/served", json={"path": path, "body": body})  # console --server and its key
            assert via.status_code == 200, via.text
            assert via.json() == call(tiny_server + path, body, key=SERVER_KEY), path
        assert c.post("/api/served", json={"url": tiny_server, "key": SERVER_KEY, "path": "/v1/classify",
                                           "body": text}).json()["results"][0]["label"] in ("positive", "negative")
        # the server's refusals come back as they are; its 401 as a 502 (a 401 would ask for the console's key)
        bad = c.post("/api/served", json={"path": "/v1/classify", "body": {"texts": []}})
        assert bad.status_code == 422 and bad.json()["error"]["param"]
        wrong = c.post("/api/served", json={"url": tiny_server, "key": "nope", "path": "/v1/classify", "body": text})
        assert wrong.status_code == 502 and "API key" in wrong.json()["error"]["message"]
        monitor = c.post("/api/monitor", json={}).json()  # the monitor defaults to --server too
        assert monitor["url"] == tiny_server + "/v1/monitor" and "windows" in monitor["monitor"]


def test_served_key_goes_only_to_the_console_server_and_paths_are_fixed(console_home, tiny_server):
    app = create_console(console_home / "runs", base=console_home, server="http://127.0.0.1:9",
                         server_key=SERVER_KEY)
    with TestClient(app, base_url="http://127.0.0.1:7860") as c:
        other = c.post("/api/served", json={"url": tiny_server, "path": "/v1/classify", "body": {"texts": ["x"]}})
        assert other.status_code == 502 and "API key" in other.json()["error"]["message"]
        assert c.post("/api/served", json={"path": "/v1/monitor", "body": None}).status_code == 422
        assert c.post("/api/served", json={"path": "/v1/classify"}).status_code == 422  # needs a body
        gone = c.post("/api/served", json={"path": "/v1/models"})
        assert gone.status_code == 502 and "cannot reach" in gone.json()["error"]["message"]
        assert c.post("/api/served", json={"url": "file:///etc/passwd", "path": "/v1/models"}).status_code == 422
    with TestClient(create_console(console_home / "runs"), base_url="http://127.0.0.1") as c:
        none = c.post("/api/served", json={"path": "/v1/models"})
        assert none.status_code == 422 and "--server" in none.json()["error"]["message"]


def test_served_chat_streams_the_servers_reply(console_home, chat_server):
    body = {"messages": [{"role": "user", "content": "hello"}], "max_tokens": 6, "temperature": 0}
    direct = call(chat_server + "/v1/chat/completions", body)["choices"][0]["message"]["content"]
    with TestClient(create_console(console_home / "runs"), base_url="http://127.0.0.1") as c:
        with c.stream("POST", "/api/served", json={"url": chat_server, "path": "/v1/chat/completions",
                                                   "body": {**body, "stream": True}}) as r:
            assert r.headers["content-type"].startswith("text/event-stream")
            events = [line[6:] for line in r.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert all(ch["object"] == "chat.completion.chunk" for ch in chunks)
    assert "".join(ch["choices"][0]["delta"].get("content") or "" for ch in chunks if ch["choices"]) == direct
