"""A worker killed mid-reply is noticed by the other workers within seconds.

Tabs on another worker that follow the reply get an `interrupted` error with
the text of its last checkpoint, and a send is no longer refused as `busy`,
without waiting for the stale sweep (GLMWEB_STALE_STREAM_SECONDS). Needs two
real daphne workers on PostgreSQL and Redis.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from bench.fake_upstream import FakeUpstream, Scenario, content_tokens
from tests.conftest import hosted
from tests.servers import App, RemoteSocket, glmweb_app, login_cookie, transcript_of

pytestmark = pytest.mark.skipif(not hosted(), reason="needs DATABASE_URL and REDIS_URL")

NOTICED_WITHIN_SECONDS = 10


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeUpstream]:
    with FakeUpstream().run_in_thread() as upstream:
        yield upstream


@pytest.fixture
def app(fake: FakeUpstream) -> Iterator[App]:
    fake.reset()
    with glmweb_app(fake.base_url) as running:
        running.create_user("alice")
        yield running


async def start_reply_on(url: str, cookie: str, client_id: str) -> tuple[RemoteSocket, str]:
    """A socket on ``url`` that sent a message; the conversation its slow reply streams in."""
    socket = await RemoteSocket.open(url, cookie)
    await socket.send(type="send", conversation=None, content="Die mid-reply", client_id=client_id)
    conversation = (await socket.until("start"))[0]["conversation"]
    await socket.text_until(50)
    return socket, conversation


async def test_a_tab_on_another_worker_hears_that_the_worker_streaming_its_reply_died(
    app: App, fake: FakeUpstream
) -> None:
    a = app.start_worker("a")
    b = app.start_worker("b")
    cookie = login_cookie(b, "alice")
    fake.scenario = Scenario(tokens=3000, reasoning_tokens=0, delay=0.02)  # a minute long
    expected = "".join(content_tokens(fake.scenario))
    _, conversation = await start_reply_on(a, cookie, "d1")
    on_b = await RemoteSocket.open(b, cookie)
    await on_b.send(type="join", conversation=conversation)
    await on_b.text_until(100)
    await asyncio.sleep(1.5)  # past the first checkpoint

    app.kill_worker("a")
    killed_at = time.monotonic()
    events = await asyncio.wait_for(on_b.until("error"), NOTICED_WITHIN_SECONDS)

    assert time.monotonic() - killed_at < NOTICED_WITHIN_SECONDS
    error = events[-1]
    assert (error["code"], error["status"]) == ("interrupted", "interrupted")
    assert error["retryable"] is True
    assert error["conversation"] == conversation
    assert error["content"] and expected.startswith(error["content"])
    reply = transcript_of(b, cookie, conversation)[-1]
    assert reply["status"] == "interrupted"
    assert reply["content"] == error["content"]

    fake.scenario = Scenario(tokens=20)
    await on_b.send(type="send", conversation=conversation, content="Again", client_id="d2")
    answered = await on_b.until("done", "error")
    assert answered[-1]["type"] == "done"
    await on_b.close()


async def test_a_send_is_not_refused_as_busy_for_long_after_the_worker_streaming_died(
    app: App, fake: FakeUpstream
) -> None:
    a = app.start_worker("a")
    b = app.start_worker("b")
    cookie = login_cookie(b, "alice")
    fake.scenario = Scenario(tokens=3000, reasoning_tokens=0, delay=0.02)
    _, conversation = await start_reply_on(a, cookie, "b1")

    app.kill_worker("a")
    killed_at = time.monotonic()
    fake.scenario = Scenario(tokens=20)
    # No socket follows the reply here: only the send's own check can tell.
    on_b = await RemoteSocket.open(b, cookie)
    for attempt in range(2 * NOTICED_WITHIN_SECONDS):
        await on_b.send(
            type="send", conversation=conversation, content="Anyone?", client_id=f"b2-{attempt}"
        )
        answer = (await on_b.until("start", "error"))[-1]
        if answer["type"] == "start":
            break
        assert answer["code"] == "busy"
        await asyncio.sleep(0.5)
    assert answer["type"] == "start"
    assert time.monotonic() - killed_at < NOTICED_WITHIN_SECONDS
    assert (await on_b.until("done", "error"))[-1]["type"] == "done"
    await on_b.close()
