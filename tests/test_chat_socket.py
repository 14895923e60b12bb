"""The chat socket end to end over the real loopback fake upstream."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from channels.db import database_sync_to_async

from bench.fake_upstream import Scenario, content_tokens, reasoning_tokens
from chat.models import Conversation, Message
from tests.conftest import QueryCounter, open_socket, text_of

pytestmark = pytest.mark.django_db(transaction=True)


@database_sync_to_async
def messages_of(conversation_id: str) -> list[Message]:
    return list(Message.objects.filter(conversation_id=conversation_id).order_by("created_at"))


@database_sync_to_async
def conversation_count() -> int:
    return Conversation.objects.count()


def by_type(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e for e in events if e["type"] == kind]


async def test_a_turn_streams_numbered_deltas_and_saves_the_reply(alice, fake) -> None:
    scenario = Scenario(tokens=30, reasoning_tokens=5, delay=0.005)
    fake.scenario = scenario
    socket = await open_socket(alice)

    events = await socket.turn("Hello there")

    start, done = events[0], events[-1]
    assert start["type"] == "start" and start["seq"] == 0
    assert start["user_message"]["content"] == "Hello there"
    assert start["title"] == "Hello there"
    deltas = by_type(events, "delta")
    assert [d["seq"] for d in deltas] == list(range(1, len(deltas) + 1))
    assert done["type"] == "done" and done["seq"] == len(deltas) + 1
    assert text_of(events) == "".join(content_tokens(scenario))
    assert text_of(events, "reasoning") == "".join(reasoning_tokens(scenario))
    assert done["status"] == "complete" and done["finish_reason"] == "stop"
    assert done["usage"]["estimated"] is False
    assert done["usage"]["completion_tokens"] == 35

    user_message, reply = await messages_of(start["conversation"])
    assert (user_message.role, user_message.content) == ("user", "Hello there")
    assert reply.content == "".join(content_tokens(scenario))
    assert reply.reasoning == "".join(reasoning_tokens(scenario))
    assert reply.status == "complete"
    assert reply.total_tokens == done["usage"]["total_tokens"]
    assert reply.ttft_ms is not None and reply.duration_ms is not None
    assert fake.headers[-1]["authorization"] == "Bearer test-key-not-a-real-one"
    await socket.close()


async def test_deltas_are_deltas_never_the_accumulated_text(alice, fake) -> None:
    fake.scenario = Scenario(tokens=40, reasoning_tokens=0, delay=0.01)
    socket = await open_socket(alice)

    events = await socket.turn("Count")

    deltas = by_type(events, "delta")
    assert len(deltas) > 5
    assert sum(len(d.get("content", "")) for d in deltas) == len(text_of(events))
    await socket.close()


async def test_the_next_turn_sends_the_whole_history_and_system_prompt(alice, fake) -> None:
    socket = await open_socket(alice)
    first = await socket.turn("First question")
    conversation = first[0]["conversation"]
    await database_sync_to_async(Conversation.objects.filter(id=conversation).update)(
        system_prompt="Be brief."
    )

    await socket.turn("Second question", conversation=conversation)

    sent = fake.requests[-1]
    assert sent["stream"] is True
    assert sent["stream_options"] == {"include_usage": True}
    assert [(m["role"], m["content"]) for m in sent["messages"]] == [
        ("system", "Be brief."),
        ("user", "First question"),
        ("assistant", text_of(first)),
        ("user", "Second question"),
    ]
    await socket.close()


async def test_params_are_sent_upstream_and_bad_ones_refused(alice, fake) -> None:
    socket = await open_socket(alice)
    await socket.turn(
        "Hi", params={"temperature": 0.2, "top_p": 0.9, "max_tokens": 50, "stop": ["END"]}
    )
    sent = fake.requests[-1]
    assert (sent["temperature"], sent["top_p"], sent["max_tokens"], sent["stop"]) == (
        0.2,
        0.9,
        50,
        ["END"],
    )

    await socket.send_message("Hi", params={"temperature": 7})
    error = await socket.event()
    assert error["type"] == "error" and error["code"] == "bad_params"
    assert "Temperature" in error["message"]
    assert len(fake.requests) == 1
    await socket.close()


async def test_queries_per_turn_do_not_grow_with_reply_length(alice, fake, settings) -> None:
    settings.GLMWEB_SESSION_RECHECK_SECONDS = 0  # every frame's session check counts
    socket = await open_socket(alice)
    await socket.turn("Warm up")  # a person's first turn also creates their limits row
    counts = []
    for tokens in (20, 2000):
        fake.scenario = Scenario(tokens=tokens, reasoning_tokens=0)
        async with QueryCounter() as queries:
            events = await socket.turn(f"{tokens} tokens please")
        assert events[-1]["type"] == "done"
        counts.append(queries.count)
    assert counts[0] == counts[1], counts
    assert 3 <= counts[0] <= 20, counts
    await socket.close()


# --- Stop -------------------------------------------------------------------------


async def test_stop_cancels_the_upstream_and_keeps_the_partial_reply(alice, fake) -> None:
    fake.scenario = Scenario(tokens=500, reasoning_tokens=0, delay=0.02)
    socket = await open_socket(alice)
    await socket.send_message("Tell me a long story")
    events = await socket.until("delta")
    events += await socket.until("delta")
    conversation = events[0]["conversation"]

    await socket.send(type="stop", conversation=conversation)
    events += await socket.until("done")

    done = events[-1]
    assert done["status"] == "stopped"
    assert done["usage"]["estimated"] is True
    reply = (await messages_of(conversation))[-1]
    assert reply.status == "stopped"
    assert reply.content == text_of(events)
    assert 0 < len(reply.content) < len("".join(content_tokens(fake.scenario)))
    await asyncio.sleep(1.0)
    assert fake.disconnects >= 1
    await socket.close()


async def test_closing_the_socket_does_not_stop_the_reply(alice, fake) -> None:
    fake.scenario = Scenario(tokens=40, delay=0.01)
    socket = await open_socket(alice)
    await socket.send_message("Keep going without me")
    start = (await socket.until("start"))[0]
    await socket.close()

    for _ in range(100):
        reply = (await messages_of(start["conversation"]))[-1]
        if reply.status != "streaming":
            break
        await asyncio.sleep(0.05)
    assert reply.status == "complete"
    assert reply.content == "".join(content_tokens(fake.scenario))


async def test_rejoining_mid_stream_gives_the_exact_text(alice, fake) -> None:
    fake.scenario = Scenario(tokens=120, reasoning_tokens=10, delay=0.01)
    first = await open_socket(alice)
    await first.send_message("Stream to two tabs")
    start = (await first.until("delta"))[0]
    conversation = start["conversation"]
    await asyncio.sleep(0.3)

    second = await open_socket(alice)
    await second.send(type="join", conversation=conversation)
    late = await second.until("done")

    assert late[0] == {"type": "joined", "conversation": conversation, "generating": True}
    assert by_type(late, "snapshot")
    assert text_of(late) == "".join(content_tokens(fake.scenario))
    assert text_of(late, "reasoning") == "".join(reasoning_tokens(fake.scenario))
    await first.close()
    await second.close()


async def test_stop_from_another_tab_stops_the_reply(alice, fake) -> None:
    fake.scenario = Scenario(tokens=500, delay=0.02)
    first = await open_socket(alice)
    await first.send_message("Long one")
    conversation = (await first.until("delta"))[0]["conversation"]
    second = await open_socket(alice)
    await second.send(type="join", conversation=conversation)

    await second.send(type="stop", conversation=conversation)

    assert (await first.until("done"))[-1]["status"] == "stopped"
    assert (await second.until("done"))[-1]["status"] == "stopped"
    await first.close()
    await second.close()


# --- One turn per send --------------------------------------------------------------


async def test_a_resent_frame_makes_one_turn(alice, fake) -> None:
    socket = await open_socket(alice)
    await socket.send_message("Only once", client_id="same-id")
    await socket.send_message("Only once", client_id="same-id")
    events = await socket.until("done")
    if len(by_type(events, "start")) < 2:
        events.append(await socket.event())

    starts = by_type(events, "start")
    assert len(starts) == 2
    assert starts[0]["reply"] == starts[1]["reply"]
    assert len(fake.requests) == 1
    assert len(await messages_of(starts[0]["conversation"])) == 2
    await socket.close()


async def test_a_second_send_while_generating_is_refused(alice, fake) -> None:
    fake.scenario = Scenario(tokens=200, delay=0.01)
    socket = await open_socket(alice)
    await socket.send_message("First")
    conversation = (await socket.until("start"))[0]["conversation"]

    await socket.send_message("Second", conversation=conversation, client_id="second")
    events = await socket.until("error")

    assert events[-1]["code"] == "busy"
    assert events[-1]["client_id"] == "second"
    assert "already being generated" in events[-1]["message"]
    await socket.until("done")
    assert len(fake.requests) == 1
    await socket.close()


# --- Upstream faults ----------------------------------------------------------------

FAULTS = [
    (Scenario(status=401), "upstream_auth"),
    (Scenario(status=404), "model_not_found"),
    (Scenario(status=400), "upstream_bad_request"),
    (Scenario(status=429, retry_after="3600"), "rate_limited"),
    (Scenario(status=503), "upstream_overloaded"),
    (Scenario(tokens=50, cut_after=5), "upstream_protocol"),
    (Scenario(tokens=50, stall_after=5), "upstream_timeout"),
    (Scenario(tokens=50, malformed_after=5), "upstream_protocol"),
    (Scenario(tokens=50, error_after=5), "upstream_error"),
]


@pytest.mark.parametrize(("scenario", "code"), FAULTS, ids=[code for _, code in FAULTS])
async def test_each_upstream_fault_reaches_the_user_and_keeps_everything(
    alice, fake, settings, scenario, code
) -> None:
    settings.UPSTREAM_MAX_RETRIES = 0
    settings.UPSTREAM_CHUNK_TIMEOUT = 0.5
    fake.scenario = scenario
    socket = await open_socket(alice)

    events = await socket.turn("Will this work?")

    error = events[-1]
    assert error["type"] == "error" and error["code"] == code
    assert error["message"] and "http" not in error["message"].lower()
    assert "test-key" not in error["message"]
    user_message, reply = await messages_of(error["conversation"])
    assert user_message.content == "Will this work?"
    partial = text_of(events)
    assert reply.content == partial
    assert reply.status == ("interrupted" if partial else "error")
    assert reply.error_code == code

    # The socket still works: the next turn goes through.
    fake.scenario = Scenario()
    again = await socket.turn("Try again", conversation=error["conversation"])
    assert again[-1]["type"] == "done"
    await socket.close()


async def test_regenerate_writes_a_new_reply_and_keeps_the_old_one(alice, fake) -> None:
    fake.scenario = Scenario(tokens=10, cut_after=3)
    socket = await open_socket(alice)
    events = await socket.turn("Retry me")
    conversation = events[0]["conversation"]
    assert events[-1]["status"] == "interrupted" and events[-1]["retryable"] is True

    fake.scenario = Scenario(tokens=10)
    await socket.send(type="regenerate", conversation=conversation)
    retry = await socket.until("done")

    assert retry[0]["user_message"] is None
    assert retry[0]["parent"] == events[0]["user_message"]["id"]
    assert [m["role"] for m in fake.requests[-1]["messages"]] == ["user"]
    messages = await messages_of(conversation)
    assert [m.status for m in messages] == ["complete", "interrupted", "complete"]
    await socket.close()


# --- Bad frames ---------------------------------------------------------------------

BAD_FRAMES = [
    ("not json", "bad_frame"),
    ("[1, 2]", "bad_frame"),
    ('{"type": 5}', "bad_frame"),
    ('{"type": "dance"}', "bad_frame"),
    ('{"type": "send", "content": 5, "client_id": "x"}', "bad_frame"),
    ('{"type": "send", "content": "hi", "client_id": ""}', "bad_frame"),
    ('{"type": "send", "content": "   ", "client_id": "x"}', "empty_message"),
    ('{"type": "stop", "conversation": 12}', "bad_frame"),
    (
        '{"type": "send", "content": "hi", "client_id": "x", "params": {"top_p": "high"}}',
        "bad_params",
    ),
]


@pytest.mark.parametrize(("frame", "code"), BAD_FRAMES)
async def test_bad_frames_get_an_error_and_the_socket_stays_usable(
    alice, fake, frame, code
) -> None:
    socket = await open_socket(alice)
    await socket.communicator.send_to(text_data=frame)
    error = await socket.event()
    assert error["type"] == "error" and error["code"] == code
    assert (await socket.turn("Still there?"))[-1]["type"] == "done"
    assert await conversation_count() == 1
    await socket.close()


async def test_binary_and_oversized_frames_are_refused(alice, fake, settings) -> None:
    settings.GLMWEB_MAX_MESSAGE_CHARS = 1000
    socket = await open_socket(alice)
    await socket.communicator.send_to(bytes_data=b"\x00\x01")
    assert (await socket.event())["code"] == "bad_frame"

    await socket.send_message("x" * 1001)
    error = await socket.event()
    assert error["code"] == "too_large" and "1,000" in error["message"]

    assert fake.requests == []
    assert (await socket.turn("Still fine"))[-1]["type"] == "done"

    # Over the frame limit: closed as daphne closes it (tests/test_hardening_frames.py).
    await socket.communicator.send_to(text_data="x" * (settings.GLMWEB_MAX_FRAME_BYTES + 1))
    closed = await socket.communicator.receive_output()
    assert (closed["type"], closed["code"]) == ("websocket.close", 1009)
    await socket.close()


# --- Ownership ----------------------------------------------------------------------


async def test_another_users_conversation_is_not_found_on_the_socket(alice, bob, fake) -> None:
    alices = await open_socket(alice)
    conversation = (await alices.turn("Alice's secret"))[0]["conversation"]
    bobs = await open_socket(bob)

    for frame in (
        {"type": "send", "conversation": conversation, "content": "Let me in", "client_id": "b1"},
        {"type": "regenerate", "conversation": conversation},
        {"type": "stop", "conversation": conversation},
        {"type": "join", "conversation": conversation},
    ):
        await bobs.send(**frame)
        error = await bobs.event()
        assert error["code"] == "not_found", frame
        assert error["message"] == "That conversation doesn't exist."

    await bobs.send(type="join", conversation="00000000-0000-0000-0000-000000000000")
    assert (await bobs.event())["message"] == "That conversation doesn't exist."
    assert [m.content for m in await messages_of(conversation)] == [
        "Alice's secret",
        "".join(content_tokens(fake.scenario)),
    ]
    assert len(fake.requests) == 1
    await alices.close()
    await bobs.close()


async def test_sockets_without_a_session_or_from_another_origin_are_refused(alice, db) -> None:
    from channels.testing import WebsocketCommunicator

    from glmweb.asgi import application

    anonymous = WebsocketCommunicator(
        application,
        "/ws/chat/",
        headers=[(b"origin", b"http://127.0.0.1"), (b"host", b"127.0.0.1")],
    )
    connected, code = await anonymous.connect()
    assert not connected and code == 4401

    with pytest.raises(AssertionError):
        await open_socket(alice, origin="http://evil.example")


async def test_logging_out_cuts_the_socket(alice, fake) -> None:
    socket = await open_socket(alice)
    await database_sync_to_async(_delete_sessions)()

    await socket.send_message("Am I still in?")
    error = await socket.event()
    assert error["code"] == "not_authenticated"
    assert fake.requests == []


def _delete_sessions() -> None:
    from django.contrib.sessions.models import Session

    Session.objects.all().delete()
