"""`lmkernel app serve`: the bot behind the server's batcher, OpenAI chat (plain and streamed) and /v1/app/respond."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from serve_helpers import live_server, wait_ready

from lmkernel.app.serving import create_bot_app
from lmkernel.app.support import Reply
from lmkernel.serve.settings import ServeSettings


class FakeBot:
    def __init__(self):
        self.seen = []

    def respond(self, message):
        self.seen.append(message)
        if "person" in message:
            return Reply("handoff", "Passing you to a colleague.", "en", "human", 0.9)
        return Reply("answer", "Freeze the card in the app.", "en", "card", 0.8, 0.71,
                     [{"index": 1, "chunk_id": "lost-card#0", "doc_id": "lost-card", "source": "lost-card",
                       "text": "Freeze the card in the app."}])


@pytest.fixture()
def bot_client(tmp_path):
    bot = FakeBot()
    app = create_bot_app(tmp_path / "acme", ServeSettings(admission="off", api_keys=frozenset({"k"})), bot=bot)
    with TestClient(app, headers={"Authorization": "Bearer k"}) as client:
        wait_ready(client)
        yield client, bot


def test_respond_and_chat_completions(bot_client):
    client, bot = bot_client
    reply = client.post("/v1/app/respond", json={"message": "I lost my card"}).json()
    assert reply["kind"] == "answer" and reply["citations"][0]["doc_id"] == "lost-card"
    chat = client.post("/v1/chat/completions", json={"messages": [
        {"role": "user", "content": "hello"}, {"role": "assistant", "content": "hi"},
        {"role": "user", "content": "I want a person"}]}).json()
    assert chat["object"] == "chat.completion" and chat["model"] == "acme"
    assert chat["choices"][0]["message"] == {"role": "assistant", "content": "Passing you to a colleague."}
    assert chat["lmkernel"]["kind"] == "handoff" and bot.seen[-1] == "I want a person"  # the last user message
    assert client.get("/v1/models").json()["data"][0]["id"] == "acme"


def test_stream_and_bad_requests(bot_client):
    client, _ = bot_client
    with client.stream("POST", "/v1/chat/completions",
                       json={"messages": [{"role": "user", "content": "lost card"}], "stream": True}) as r:
        body = "".join(r.iter_text())
    assert r.status_code == 200 and "Freeze the card" in body and '"kind": "answer"' in body
    assert body.rstrip().endswith("data: [DONE]")
    assert client.post("/v1/app/respond", json={"message": "   "}).status_code == 422
    assert client.post("/v1/app/respond", json={"message": "x" * 5000}).status_code == 413
    no_user = client.post("/v1/chat/completions", json={"messages": [{"role": "system", "content": "be nice"}]})
    assert no_user.status_code == 422 and "no user message" in no_user.json()["error"]["message"]
    assert client.post("/v1/app/respond", json={"message": "x"}, headers={"Authorization": "Bearer bad"}
                       ).status_code == 401


def test_the_openai_client_reads_the_reply_and_its_citations(tmp_path):
    openai = pytest.importorskip("openai")
    app = create_bot_app(tmp_path / "acme", ServeSettings(admission="off"), bot=FakeBot())
    with live_server(app) as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="none", max_retries=0, timeout=30)
        out = client.chat.completions.create(model="acme", messages=[{"role": "user", "content": "lost card"}])
        assert out.choices[0].message.content == "Freeze the card in the app."
        assert out.model_extra["lmkernel"]["citations"][0]["chunk_id"] == "lost-card#0"
        pieces = [c.choices[0].delta.content or "" for c in client.chat.completions.create(
            model="acme", messages=[{"role": "user", "content": "lost card"}], stream=True)]
        assert "".join(pieces) == "Freeze the card in the app."
