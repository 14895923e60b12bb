"""Every frame a client can send gets an answer, and the socket stays open (issue 18, 2).

Junk ids, deep nesting, NUL and lone surrogates in any text, a failing
handler: each is an error event, never a 1011 close. A frame over the size
limit closes the socket with 1009 and a reason, on a real daphne worker too.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest
import websockets
from channels.db import database_sync_to_async
from django.test import Client
from django.urls import reverse

from chat.models import Conversation, Message
from chat.turns import starting
from tests.conftest import open_socket
from tests.servers import App, RemoteSocket, glmweb_app, login_cookie

pytestmark = pytest.mark.django_db(transaction=True)

NUL = "\x00"
LONE_SURROGATE = "\ud800"
JUNK_ID = "zzz"


def send(**fields: object) -> str:
    frame = {"type": "send", "conversation": None, "content": "hi", "client_id": "c1", **fields}
    return json.dumps(frame)  # ensure_ascii: "\u0000", "\ud800" go as JSON escapes


def deeply_nested(depth: int) -> str:
    return '{"type": "send", "params": ' + "[" * depth + "]" * depth + "}"


JUNK_FRAMES = {
    "send into a junk id": send(conversation=JUNK_ID),
    "regenerate a junk id": json.dumps({"type": "regenerate", "conversation": JUNK_ID}),
    "regenerate a junk reply": json.dumps(
        {"type": "regenerate", "conversation": "1b4e28ba-2fa1-11d2-883f-0016d3cca427", "reply": "z"}
    ),
    "edit a junk id": json.dumps(
        {
            "type": "edit",
            "conversation": JUNK_ID,
            "message": JUNK_ID,
            "content": "x",
            "client_id": "e",
        }
    ),
    "continue a junk id": json.dumps({"type": "continue", "conversation": JUNK_ID, "reply": "z"}),
    "switch to a junk id": json.dumps({"type": "switch", "conversation": JUNK_ID, "leaf": "z"}),
    "join a junk id": json.dumps({"type": "join", "conversation": JUNK_ID}),
    "stop a junk id": json.dumps({"type": "stop", "conversation": JUNK_ID}),
    "nested 50,000 deep": deeply_nested(50_000),
    "nested 100 deep": deeply_nested(100),
    "NaN for a number": '{"type": "send", "content": "hi", "client_id": "n", '
    '"params": {"temperature": NaN}}',
    "lone surrogate in content": send(content=f"hi {LONE_SURROGATE}"),
    "lone surrogate in client_id": send(client_id=f"c{LONE_SURROGATE}"),
    "NUL in content": send(content=f"hi{NUL}there"),
    "NUL in client_id": send(client_id=f"c{NUL}1"),
    "NUL in the system prompt": send(settings={"system_prompt": f"Be{NUL}nice"}),
    "NUL in a stop sequence": send(params={"stop": [f"END{NUL}"]}),
    "NUL in a setting's stop sequence": send(settings={"params": {"stop": f"x{NUL}"}}),
    "NUL in a key": send(params={f"top{NUL}p": 1}),
}


def saved_counts() -> tuple[int, int]:
    return Conversation.objects.count(), Message.objects.count()


@pytest.mark.parametrize("frame", JUNK_FRAMES.values(), ids=JUNK_FRAMES.keys())
async def test_a_junk_frame_is_bad_frame_and_the_socket_stays_open(alice, fake, frame) -> None:
    socket = await open_socket(alice)
    await socket.communicator.send_to(text_data=frame)

    error = await socket.event()
    assert (error["type"], error["code"]) == ("error", "bad_frame")
    assert await database_sync_to_async(saved_counts)() == (0, 0)
    assert fake.requests == []
    assert (await socket.turn("Still there?"))[-1]["type"] == "done"
    await socket.close()


async def test_nul_and_surrogates_are_named_in_the_answer(alice, fake) -> None:
    socket = await open_socket(alice)
    await socket.communicator.send_to(text_data=send(content=f"a{NUL}b"))
    assert "NUL" in (await socket.event())["message"]
    await socket.close()


async def test_an_id_in_another_spelling_is_the_same_conversation(alice, fake) -> None:
    socket = await open_socket(alice)
    conversation = (await socket.turn("Hi"))[0]["conversation"]

    await socket.send(type="join", conversation=conversation.upper())

    joined = await socket.event()
    assert joined == {"type": "joined", "conversation": conversation, "generating": False}
    await socket.close()


async def test_a_failing_handler_answers_server_error_and_the_socket_stays(
    alice, fake, monkeypatch, caplog
) -> None:
    socket = await open_socket(alice)
    conversation = (await socket.turn("Hi"))[0]["conversation"]

    def broken(*args: object) -> str:
        raise RuntimeError("a bug")

    monkeypatch.setattr(starting, "switch_branch", broken)
    await socket.send(type="switch", conversation=conversation, leaf=conversation)

    error = await socket.event()
    assert (error["type"], error["code"]) == ("error", "server_error")
    assert "a bug" not in error["message"]
    assert any(r.exc_info and "a bug" in str(r.exc_info[1]) for r in caplog.records)
    assert (await socket.turn("Still there?"))[-1]["type"] == "done"
    await socket.close()


@pytest.mark.parametrize(
    "body",
    [
        json.dumps({"system_prompt": f"Be{NUL}nice"}),
        json.dumps({"params": {"stop": [f"END{LONE_SURROGATE}"]}}),
        '{"params": ' + "[" * 50_000 + "]" * 50_000 + "}",
    ],
    ids=["NUL in the system prompt", "surrogate in a stop sequence", "nested 50,000 deep"],
)
def test_the_settings_views_refuse_the_same_text(alice, body) -> None:
    client = Client()
    client.force_login(alice)
    conversation = Conversation.objects.create(owner=alice, title="Plans", model="glm-5")
    for url in (
        reverse("chat:new_chat_settings"),
        reverse("chat:settings", args=[conversation.id]),
    ):
        response = client.post(url, body, content_type="application/json")
        assert response.status_code == 400, url
    assert Conversation.objects.get(id=conversation.id).system_prompt == ""


# --- On a real worker -------------------------------------------------------------


@pytest.fixture
def app() -> Iterator[App]:
    # No reply is asked for: the upstream is never reached.
    with glmweb_app("http://127.0.0.1:9/v1", GLMWEB_MAX_FRAME_BYTES="65536") as running:
        running.create_user("alice")
        yield running


async def test_a_frame_over_the_limit_closes_with_1009_and_a_reason(app: App) -> None:
    base = await asyncio.to_thread(app.start_worker, "a")
    cookie = await asyncio.to_thread(login_cookie, base, "alice")
    socket = await RemoteSocket.open(base, cookie)

    # Just under the limit: the consumer answers it.
    await socket.send(type="dance", pad="x" * (65536 - 100))
    assert (await socket.event())["code"] == "bad_frame"
    # Over it, in bytes (a "é" is two): a close frame, not a dropped connection.
    await socket.send(type="dance", pad="é" * 33000)
    with pytest.raises(websockets.ConnectionClosed) as closed:
        await socket.event()
    assert closed.value.rcvd is not None, "closed without a close frame"
    assert closed.value.rcvd.code == 1009
    assert "65536" in closed.value.rcvd.reason

    # And the 1 MiB frame, on a fresh socket.
    socket = await RemoteSocket.open(base, cookie)
    await socket.send(type="send", content="x" * (1024 * 1024 + 1))
    with pytest.raises(websockets.ConnectionClosed) as closed:
        await socket.event()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
    assert closed.value.rcvd.reason
