"""The console in a real browser: Debian's headless Chromium driven over CDP by Playwright (no browser
download). Skipped, saying why, where Chromium or Playwright is missing (.ci/run installs them when it can).

Every request the page makes is recorded: none may go anywhere but the console. Screenshots of each view go
to the test's temp dir (``screens/``)."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from conftest import KEY, SERVER_KEY, call, child_env, free_port, lmkernel_up, make_study, spec_text, wait_up

CHROMIUM = Path(os.environ.get("LMK_CHROMIUM", "/usr/bin/chromium"))
WAIT_MS = 420_000  # a loaded 2-core machine: model loads and a training start take a while

if not CHROMIUM.exists():
    pytest.skip(f"no Chromium at {CHROMIUM}: install Debian's package (apt-get install chromium; .ci/run does it "
                "as root) or set LMK_CHROMIUM", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed "
                               "(pip install -e .[dev])")


@pytest.fixture(scope="module")
def console_url(console_home):
    yield from lmkernel_up(["console", "runs", "--api-key-env", "LMK_CONSOLE_KEYS"], console_home, "/",
                           LMK_CONSOLE_KEYS=KEY)


@pytest.fixture(scope="module")
def browser_page(console_url, tmp_path_factory):
    """One page for the module, the key given once; ``requests`` holds every URL it asked for."""
    shots = tmp_path_factory.mktemp("screens")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(WAIT_MS)
        requests: list[str] = []
        page.on("request", lambda r: requests.append(r.url))
        page.goto(console_url + "/")
        page.wait_for_selector("#keybox:not([hidden])")
        page.fill("#key-input", KEY)
        page.click("#key-form button")
        yield page, requests, shots
        browser.close()
    outside = [u for u in requests if not (u.startswith(console_url + "/") or u.startswith(f"blob:{console_url}/"))]
    assert not outside, f"the page asked for something outside the console: {outside}"


def _only_console(requests: list[str], url: str) -> None:
    outside = [u for u in requests if not (u.startswith(url + "/") or u.startswith(f"blob:{url}/"))]
    assert requests and not outside, outside


def test_runs_table_and_a_report(browser_page, console_url):
    page, requests, shots = browser_page
    page.wait_for_selector("tr[data-run='tiny'] td.status")
    assert page.inner_text("tr[data-run='tiny'] td.status") == "done"
    page.click("tr[data-run='tiny'] a.run-link")
    page.wait_for_selector("#report table.confusion")
    page.wait_for_function("document.querySelectorAll('#report .plots img').length >= 3")
    assert int(page.get_attribute("#report-canvas", "data-points")) > 3
    page.screenshot(path=str(shots / "runs-report.png"), full_page=True)
    page.check("tr[data-run='tiny'] input.pick")
    page.check("tr[data-run='chat'] input.pick")
    page.click("#compare-btn")
    page.wait_for_selector("#compare-table td:has-text('test accuracy')")
    assert int(page.get_attribute("#compare-canvas", "data-points")) > 3
    page.screenshot(path=str(shots / "runs-compare.png"), full_page=True)
    _only_console(requests, console_url)


def test_new_run_shows_errors_inline_then_trains_with_a_live_curve(browser_page, console_url, tiny_bert):
    page, requests, shots = browser_page
    page.click("[data-tab=new]")
    page.wait_for_selector("#system-info:has-text('cpu')")
    page.fill("#spec-editor", "task: {type: clasification}\n")
    page.click("#check-btn")
    page.wait_for_selector("#spec-lines .bad")
    assert "classification" in page.inner_text("#spec-problems")
    page.fill("#spec-editor", spec_text(tiny_bert, epochs=3, log_every=1))
    page.fill("#run-name", "from-browser")
    page.click("#start-btn")
    page.wait_for_function("+document.querySelector('#live-canvas').dataset.points >= 2")
    first = int(page.get_attribute("#live-canvas", "data-points"))
    page.wait_for_function(f"+document.querySelector('#live-canvas').dataset.points > {first}")
    page.screenshot(path=str(shots / "new-run-live.png"), full_page=True)
    page.wait_for_selector("#resume-btn:not([disabled])")  # the job ended (or was stopped)
    assert "done" in page.inner_text("#job-status")
    _only_console(requests, console_url)


def test_playground_highlights_words_and_streams_a_chat_reply(browser_page, console_url):
    page, requests, shots = browser_page
    page.click("[data-tab=play]")
    page.wait_for_selector("#pg-run option[value='tiny']", state="attached")
    page.select_option("#pg-run", "tiny")
    page.fill("#pg-text", "the film was great")
    page.click("#pg-classify")
    page.wait_for_selector("#pg-words .attr-word")
    assert page.locator("#pg-words .attr-word").all_inner_texts() == ["the", "film", "was", "great"]
    assert "rgba(" in page.get_attribute("#pg-words .attr-word >> nth=3", "style")
    page.select_option("#pg-run", "chat")
    page.fill("#chat-input", "hello")
    page.click("#chat-send")
    page.wait_for_selector(".msg-assistant[data-done='1']")
    assert int(page.get_attribute(".msg-assistant", "data-pieces")) >= 1
    page.screenshot(path=str(shots / "playground.png"), full_page=True)
    page.click("#lang")
    page.wait_for_selector("button[data-tab=play]:has-text('试用')")
    page.screenshot(path=str(shots / "playground-zh.png"), full_page=True)
    _only_console(requests, console_url)


def test_monitor_of_a_running_server(browser_page, console_url, console_home):
    import json

    page, requests, shots = browser_page
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "lmkernel.cli", "serve", str(console_home / "runs" / "tiny"),
                               "--port", str(port)], cwd=console_home, env=child_env())
    try:
        wait_up(f"http://127.0.0.1:{port}/readyz", server)
        body = json.dumps({"texts": ["the film was great", "the hotel was awful"]}).encode()
        for _ in range(3):
            urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{port}/v1/classify", data=body,
                                                          headers={"Content-Type": "application/json"}), timeout=30)
        page.click("[data-tab=monitor]")
        page.fill("#mon-url", f"http://127.0.0.1:{port}")
        page.click("#mon-start")
        page.wait_for_selector("#mon-out .bars div")
        assert "6" in page.inner_text("#mon-out h3")  # six texts classified
        page.screenshot(path=str(shots / "monitor.png"), full_page=True)
    finally:
        page.evaluate("clearInterval(state.monitor)")
        server.terminate()
        server.wait(30)
    _only_console(requests, console_url)


def test_tuning_view_follows_a_study_live(browser_page, console_url, console_home):
    import optuna

    page, requests, shots = browser_page
    folder = console_home / "runs" / "search"
    make_study(folder)  # mid-search: 2 complete, 1 pruned, 1 failed, trial 4 running at step 5 of 20
    page.click("[data-tab=tune]")
    page.click("a.study-link[data-study='search']")
    page.wait_for_selector("#trials-table tr[data-trial='4'].running")
    assert page.locator("#trials-table tr.trial").count() == 5
    assert "5/20" in page.inner_text("tr[data-trial='4'] td.state")
    assert page.get_attribute("#tune-canvas", "data-points") == "4"  # two values, two best-so-far points
    assert page.get_attribute("#tune-steps", "data-points") == "6"  # intermediate values of four trials
    assert "0.7000" in page.inner_text("#study-best")
    page.screenshot(path=str(shots / "tuning-running.png"), full_page=True)
    try:  # the search goes on: the running trial ends with a new best, and the page follows by itself
        study = optuna.load_study(study_name="lmkernel", storage=f"sqlite:///{folder / 'study.db'}")
        study.tell(4, 0.8)
        page.wait_for_selector("#trials-table tr[data-trial='4'].complete")
        page.wait_for_function("document.querySelector('#tune-canvas').dataset.points === '6'")
        assert "0.8000" in page.inner_text("#study-best")
        page.screenshot(path=str(shots / "tuning-done.png"), full_page=True)
    finally:
        page.evaluate("clearInterval(state.study)")
    _only_console(requests, console_url)


def test_playground_classifies_through_a_served_model(browser_page, console_url, tiny_server):
    page, requests, shots = browser_page
    text = "the film was great"
    page.click("[data-tab=play]")
    page.select_option("#pg-source", "served")
    page.fill("#pg-url", tiny_server)
    page.fill("#pg-key", SERVER_KEY)
    page.click("#pg-connect")
    page.wait_for_selector("#pg-served-info:has-text('classification')")
    page.fill("#pg-text", text)
    page.click("#pg-classify")
    page.wait_for_selector("#pg-words .attr-word")
    direct = call(tiny_server + "/v1/classify", {"texts": [text]}, key=SERVER_KEY)["results"][0]
    assert f"{direct['label']} ({direct['score']:.4f})" in page.inner_text("#pg-label")  # the server's answer
    words = call(tiny_server + "/v1/explain", {"texts": [text]}, key=SERVER_KEY)["results"][0]["words"]
    assert page.locator("#pg-words .attr-word").all_inner_texts() == [w["word"] for w in words]
    page.screenshot(path=str(shots / "playground-served.png"), full_page=True)
    page.select_option("#pg-source", "run")
    _only_console(requests, console_url)  # the server was reached by the console, never by the page


def test_monitor_shows_the_alert_a_served_model_fired(browser_page, console_url, tiny_server):
    page, requests, shots = browser_page
    body = {"texts": ["the film was great", "the hotel was awful"]}
    for _ in range(3):  # six texts: the rule busy_hour (count > 3 over 1h) fires
        call(tiny_server + "/v1/classify", body, key=SERVER_KEY)
    page.click("[data-tab=monitor]")
    page.fill("#mon-url", tiny_server)
    page.fill("#mon-key", SERVER_KEY)
    page.click("#mon-start")
    try:
        page.wait_for_selector("#mon-recent li.alert-firing[data-rule='busy_hour']")
        assert page.locator("#mon-rules tr.alert-firing[data-rule='busy_hour']").count() == 1
        assert "More than three texts" in page.inner_text("#mon-recent")  # the rule's summary
        page.screenshot(path=str(shots / "monitor-alert.png"), full_page=True)
    finally:
        page.evaluate("clearInterval(state.monitor)")
    _only_console(requests, console_url)
