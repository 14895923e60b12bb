"""A reply's first checkpoint comes within a second of its first token.

The shared ticker (GLMWEB_CHECKPOINT_SECONDS) is fine for the later ones, but
a worker killed a few seconds into a reply must not lose all of it.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from channels.db import database_sync_to_async

from bench.fake_upstream import FakeUpstream, Scenario, content_tokens
from tests.conftest import open_socket
from tests.servers import RemoteSocket, glmweb_app, login_cookie, transcript_of

pytestmark = pytest.mark.django_db(transaction=True)


def _saved_content(reply: str) -> str:
    from chat.models import Message

    return Message.objects.get(id=reply).content


async def test_the_first_checkpoint_is_saved_within_a_second_of_the_first_delta(
    alice: Any, fake: FakeUpstream, settings: Any
) -> None:
    settings.GLMWEB_CHECKPOINT_SECONDS = 2.0
    fake.scenario = Scenario(tokens=400, reasoning_tokens=0, delay=0.01)
    expected = "".join(content_tokens(fake.scenario))
    socket = await open_socket(alice)
    await socket.send_message("Save me early")
    reply = (await socket.until("start"))[-1]["reply"]
    await socket.until("delta")
    first_delta = time.monotonic()

    saved = ""
    while not saved and time.monotonic() - first_delta < 1.5:
        await asyncio.sleep(0.05)
        saved = await database_sync_to_async(_saved_content)(reply)
    assert saved, "no checkpoint within 1.5 s of the first delta"
    assert time.monotonic() - first_delta <= 1.0
    assert expected.startswith(saved)

    await socket.until("done")
    await socket.close()


async def test_a_worker_killed_two_seconds_into_a_reply_keeps_its_first_text(
    fake: FakeUpstream,
) -> None:
    fake.scenario = Scenario(tokens=400, reasoning_tokens=0, delay=0.02)
    expected = "".join(content_tokens(fake.scenario))
    # The default checkpoint interval: what a deployment runs.
    with glmweb_app(fake.base_url) as app:
        app.create_user("alice")
        url = app.start_worker("w")
        cookie = login_cookie(url, "alice")
        socket = await RemoteSocket.open(url, cookie)
        await socket.send(type="send", conversation=None, content="Keep some", client_id="c1")
        conversation = (await socket.until("start"))[0]["conversation"]
        await socket.until("delta")
        await asyncio.sleep(1.5)

        app.kill_worker("w")  # SIGKILL: nothing is saved on the way out
        url = app.start_worker("w")

        _, reply = transcript_of(url, cookie, conversation)
        assert reply["status"] == "interrupted"
        assert reply["content"], "nothing of the reply was checkpointed"
        assert expected.startswith(reply["content"])
