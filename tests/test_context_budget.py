"""Fitting a model's context: what is sent upstream when the history is too long.

The estimate is about four characters a token plus four per message
(chat.turns.context.estimate_tokens): a 400-character message counts 104 tokens.
"""

from __future__ import annotations

from typing import Any

import pytest
from channels.db import database_sync_to_async

from chat.models import Conversation, Message
from chat.web.transcript import transcript
from tests.conftest import open_socket, use_models

pytestmark = pytest.mark.django_db(transaction=True)

SYSTEM_PROMPT = "Answer briefly, in plain words, please."  # 39 chars: 14 tokens


@pytest.fixture(autouse=True)
def small_model(settings: Any, transactional_db: None) -> None:
    settings.UPSTREAM_MODEL = "glm-5"
    use_models({"name": "glm-5", "context_tokens": 1000, "thinking": True})


def text(label: str) -> str:
    return label.ljust(400, ".")


@database_sync_to_async
def conversation_with_turns(owner: Any, turns: int, max_tokens: int | None) -> str:
    """u1 a1 … u{turns} a{turns}, each 400 characters, shown as the current branch."""
    params = {"max_tokens": max_tokens} if max_tokens else {}
    conversation = Conversation.objects.create(
        owner=owner, title="Long", model="glm-5", system_prompt=SYSTEM_PROMPT, params=params
    )
    parent = None
    for i in range(1, turns + 1):
        for role, label in ((Message.Role.USER, f"u{i}"), (Message.Role.ASSISTANT, f"a{i}")):
            parent = conversation.messages.create(role=role, content=text(label), parent=parent)
    conversation.current_leaf = parent
    conversation.save()
    return str(conversation.id)


@database_sync_to_async
def reply_of(reply_id: str) -> Message:
    return Message.objects.get(id=reply_id)


@database_sync_to_async
def shown_transcript(conversation_id: str) -> list[dict[str, Any]]:
    return transcript(Conversation.objects.get(id=conversation_id))


@database_sync_to_async
def message_count() -> int:
    return Message.objects.count()


def labels(request: dict[str, Any]) -> list[str]:
    return [m["content"].split(".")[0] for m in request["messages"][1:]]


async def test_the_oldest_turns_are_left_out_and_the_count_recorded(alice, fake) -> None:
    # Budget 1000 - 200 = 800: the system prompt (14), the new message (104) and
    # six earlier messages (624) fit; a seventh would not.
    conversation = await conversation_with_turns(alice, turns=5, max_tokens=200)
    socket = await open_socket(alice)
    events = await socket.turn(text("u6"), conversation=conversation)

    sent = fake.requests[-1]
    assert sent["messages"][0] == {"role": "system", "content": SYSTEM_PROMPT}
    assert labels(sent) == ["u3", "a3", "u4", "a4", "u5", "a5", "u6"]
    start = events[0]
    assert start["type"] == "start" and start["context_left_out"] == 4
    assert (await reply_of(start["reply"])).context_left_out == 4
    shown = await shown_transcript(conversation)
    assert shown[-1]["id"] == start["reply"] and shown[-1]["context_left_out"] == 4
    assert shown[0]["context_left_out"] == 0
    await socket.close()


async def test_a_request_never_opens_with_a_reply_whose_question_was_left_out(alice, fake) -> None:
    # Budget 1000 - 300 = 700: five earlier messages would fit, the oldest of
    # them a reply (a3); it goes too.
    conversation = await conversation_with_turns(alice, turns=5, max_tokens=300)
    socket = await open_socket(alice)
    events = await socket.turn(text("u6"), conversation=conversation)

    assert labels(fake.requests[-1]) == ["u4", "a4", "u5", "a5", "u6"]
    assert events[0]["context_left_out"] == 6
    await socket.close()


async def test_a_history_that_fits_is_sent_whole(alice, fake) -> None:
    conversation = await conversation_with_turns(alice, turns=2, max_tokens=200)
    socket = await open_socket(alice)
    events = await socket.turn(text("u3"), conversation=conversation)

    assert labels(fake.requests[-1]) == ["u1", "a1", "u2", "a2", "u3"]
    assert events[0]["context_left_out"] == 0
    assert (await reply_of(events[0]["reply"])).context_left_out == 0
    await socket.close()


async def test_regenerating_fits_the_context_the_same_way(alice, fake) -> None:
    conversation = await conversation_with_turns(alice, turns=5, max_tokens=200)
    socket = await open_socket(alice)
    await socket.turn(text("u6"), conversation=conversation)
    await socket.send(type="regenerate", conversation=conversation)
    events = await socket.until("done", "error")

    assert labels(fake.requests[-1]) == ["u3", "a3", "u4", "a4", "u5", "a5", "u6"]
    start = next(e for e in events if e["type"] == "start")
    assert start["context_left_out"] == 4
    assert (await reply_of(start["reply"])).context_left_out == 4
    await socket.close()


async def test_a_message_too_long_even_alone_is_refused_before_anything_is_saved(
    alice, fake
) -> None:
    # Budget 1000 - 250 (a quarter kept for the reply): 3,000 characters with
    # the system prompt come to 768 tokens.
    conversation = await conversation_with_turns(alice, turns=1, max_tokens=None)
    before = await message_count()
    socket = await open_socket(alice)
    await socket.send_message("x" * 3000, conversation=conversation)
    error = await socket.event()

    assert error["type"] == "error" and error["code"] == "too_long"
    assert "glm-5's context" in error["message"]
    assert "768 tokens" in error["message"]
    assert await message_count() == before
    assert fake.requests == []

    # The same on a new chat: no conversation is left behind.
    await socket.send_message("x" * 3000)
    assert (await socket.event())["code"] == "too_long"
    assert await database_sync_to_async(Conversation.objects.count)() == 1
    await socket.close()


async def test_an_edit_too_long_even_alone_is_refused_too(alice, fake) -> None:
    conversation = await conversation_with_turns(alice, turns=1, max_tokens=None)
    first = await database_sync_to_async(lambda: str(Message.objects.get(content=text("u1")).id))()
    before = await message_count()
    socket = await open_socket(alice)
    await socket.send(
        type="edit",
        conversation=conversation,
        message=first,
        content="x" * 3000,
        client_id="edit-1",
    )
    error = await socket.event()

    assert error["code"] == "too_long"
    assert await message_count() == before
    assert fake.requests == []
    await socket.close()


@database_sync_to_async
def set_max_tokens(conversation_id: str, max_tokens: int) -> None:
    Conversation.objects.filter(id=conversation_id).update(params={"max_tokens": max_tokens})


async def test_regenerating_a_message_that_no_longer_fits_is_refused(alice, fake) -> None:
    # max_tokens raised after the message was answered: budget 1000 - 900 = 100,
    # less than the system prompt (14) and the message (104) alone.
    conversation = await conversation_with_turns(alice, turns=1, max_tokens=None)
    await set_max_tokens(conversation, 900)
    before = await message_count()
    socket = await open_socket(alice)
    await socket.send(type="regenerate", conversation=conversation)
    error = await socket.event()

    assert error["code"] == "too_long"
    assert "118 tokens" in error["message"] and "(100," in error["message"]
    assert await message_count() == before
    assert fake.requests == []
    await socket.close()


@database_sync_to_async
def reply_cut_at_length(conversation_id: str, content: str) -> Message:
    reply = Message.objects.get(conversation_id=conversation_id, role=Message.Role.ASSISTANT)
    reply.content, reply.finish_reason, reply.status = content, "length", Message.Status.COMPLETE
    reply.save()
    return reply


async def test_continuing_a_reply_as_long_as_the_context_allows_is_refused(alice, fake) -> None:
    # Budget 750: the system prompt (14), the message (104) and the reply so
    # far (2,600 characters: 654) come to 772.
    conversation = await conversation_with_turns(alice, turns=1, max_tokens=None)
    reply = await reply_cut_at_length(conversation, "y" * 2600)
    socket = await open_socket(alice)
    await socket.send(type="continue", conversation=conversation, reply=str(reply.id))
    error = await socket.event()

    assert error["code"] == "too_long"
    assert "772 tokens" in error["message"]
    kept = await reply_of(str(reply.id))
    assert (kept.content, kept.status, kept.finish_reason) == ("y" * 2600, "complete", "length")
    assert fake.requests == []

    # Shorter, it continues.
    await reply_cut_at_length(conversation, "y" * 2000)
    await socket.send(type="continue", conversation=conversation, reply=str(reply.id))
    assert (await socket.until("done", "error"))[-1]["type"] == "done"
    assert len(fake.requests) == 1
    await socket.close()
