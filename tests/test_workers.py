"""Several daphne worker processes sharing PostgreSQL and Redis, as deployed.

These run whenever DATABASE_URL and REDIS_URL point at live servers (.ci/run
always sets them).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from bench.fake_upstream import FakeUpstream, Scenario, content_tokens
from tests.conftest import hosted, text_of
from tests.servers import App, RemoteSocket, glmweb_app, login_cookie, transcript_of

pytestmark = pytest.mark.skipif(not hosted(), reason="needs DATABASE_URL and REDIS_URL")


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeUpstream]:
    with FakeUpstream().run_in_thread() as upstream:
        yield upstream


@pytest.fixture
def app(fake: FakeUpstream) -> Iterator[App]:
    fake.reset()
    with glmweb_app(fake.base_url, GLMWEB_CHECKPOINT_SECONDS="0.3") as running:
        running.create_user("alice")
        yield running


async def test_a_reply_streams_to_sockets_on_another_worker_and_stops_from_there(
    app: App, fake: FakeUpstream
) -> None:
    a = app.start_worker("a")
    b = app.start_worker("b")
    cookie = login_cookie(a, "alice")
    fake.scenario = Scenario(tokens=150, reasoning_tokens=5, delay=0.02)
    expected = "".join(content_tokens(fake.scenario))

    on_a = await RemoteSocket.open(a, cookie)
    await on_a.send(type="send", conversation=None, content="Hello from A", client_id="t1")
    start = (await on_a.until("start"))[0]
    conversation = start["conversation"]

    on_b = await RemoteSocket.open(b, cookie)
    await on_b.send(type="join", conversation=conversation)
    reconnecting = await RemoteSocket.open(b, cookie)
    await reconnecting.send(type="join", conversation=conversation)
    await reconnecting.until("delta")
    await reconnecting.close()  # the tab reloads mid-stream ...
    await asyncio.sleep(0.5)
    reconnected = await RemoteSocket.open(b, cookie)  # ... and comes back
    await reconnected.send(type="join", conversation=conversation)

    seen_on_a = [start, *await on_a.until("done")]
    seen_on_b = await on_b.until("done")
    seen_reconnected = await reconnected.until("done")

    assert text_of(seen_on_a) == expected
    assert text_of(seen_on_b) == expected
    assert text_of(seen_reconnected) == expected
    assert [e["seq"] for e in seen_on_a] == sorted({e["seq"] for e in seen_on_a})
    assert len(fake.requests) == 1

    # Stop sent on B stops the reply streaming from A.
    fake.scenario = Scenario(tokens=2000, reasoning_tokens=0, delay=0.02)
    await on_a.send(type="send", conversation=conversation, content="Go on", client_id="t2")
    await on_a.until("delta")
    await on_b.until("delta")
    await on_b.send(type="stop", conversation=conversation)
    stopped_on_a = (await on_a.until("done", timeout=5))[-1]
    assert stopped_on_a["status"] == "stopped"
    assert (await on_b.until("done", timeout=5))[-1]["status"] == "stopped"
    reply = transcript_of(b, cookie, conversation)[-1]
    assert reply["status"] == "stopped" and 0 < len(reply["content"]) < len(
        "".join(content_tokens(fake.scenario))
    )
    for socket in (on_a, on_b, reconnected):
        await socket.close()


async def test_a_killed_worker_leaves_an_interrupted_reply_that_can_be_retried(
    app: App, fake: FakeUpstream
) -> None:
    a = app.start_worker("a")
    cookie = login_cookie(a, "alice")
    fake.scenario = Scenario(tokens=400, reasoning_tokens=0, delay=0.01)
    socket = await RemoteSocket.open(a, cookie)
    await socket.send(type="send", conversation=None, content="Survive this", client_id="k1")
    conversation = (await socket.until("start"))[0]["conversation"]
    await socket.text_until(200)
    await asyncio.sleep(0.4)  # past a checkpoint

    app.kill_worker("a")
    a = app.start_worker("a")

    user_message, reply = transcript_of(a, cookie, conversation)
    assert user_message["content"] == "Survive this"
    assert reply["status"] == "interrupted"
    assert len(reply["content"]) >= 100
    assert "".join(content_tokens(fake.scenario)).startswith(reply["content"])
    assert "interrupted" in reply["error_message"]

    fake.scenario = Scenario(tokens=30)
    again = await RemoteSocket.open(a, cookie)
    await again.send(type="regenerate", conversation=conversation)
    retried = await again.until("done", "error")
    assert retried[-1]["type"] == "done" and retried[-1]["status"] == "complete"
    assert text_of(retried) == "".join(content_tokens(fake.scenario))
    await again.close()
