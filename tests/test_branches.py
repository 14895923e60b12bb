"""The message tree: edit & resend, regenerate, switching branches, continue.

What is sent upstream is checked on the real loopback fake (``fake.requests``):
the context of a turn is exactly the branch shown.
"""

from __future__ import annotations

from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from bench.fake_upstream import Scenario, content_tokens
from chat.models import Conversation, Message
from tests.conftest import open_socket, text_of
from tests.servers import transcript_in

pytestmark = pytest.mark.django_db(transaction=True)


def sent_messages(fake: Any) -> list[tuple[str, str]]:
    return [(m["role"], m["content"]) for m in fake.requests[-1]["messages"]]


@database_sync_to_async
def current_leaf_of(conversation_id: str) -> str | None:
    leaf = Conversation.objects.get(id=conversation_id).current_leaf_id
    return None if leaf is None else str(leaf)


@database_sync_to_async
def message_count(conversation_id: str) -> int:
    return Message.objects.filter(conversation_id=conversation_id).count()


@database_sync_to_async
def message(message_id: str) -> Message:
    return Message.objects.get(id=message_id)


async def two_turns(socket: Any) -> tuple[str, list[dict[str, Any]], list[dict[str, Any]]]:
    first = await socket.turn("First question")
    conversation = first[0]["conversation"]
    second = await socket.turn("Second question", conversation=conversation)
    return conversation, first, second


async def test_edit_makes_a_sibling_and_sends_only_the_branch_above_it(alice, fake) -> None:
    socket = await open_socket(alice)
    conversation, first, second = await two_turns(socket)
    edited_id = second[0]["user_message"]["id"]

    await socket.send(
        type="edit",
        conversation=conversation,
        message=edited_id,
        content="Second question, better",
        client_id="edit-1",
    )
    events = await socket.until("done")

    start = events[0]
    assert start["user_message"]["content"] == "Second question, better"
    assert start["user_message"]["client_id"] == "edit-1"
    copy = await message(start["user_message"]["id"])
    original = await message(edited_id)
    assert copy.parent_id == original.parent_id is not None
    assert str(copy.parent_id) == first[0]["reply"]
    assert sent_messages(fake) == [
        ("user", "First question"),
        ("assistant", text_of(first)),
        ("user", "Second question, better"),
    ]
    assert await current_leaf_of(conversation) == start["reply"]
    await socket.close()


async def test_an_edit_resent_with_the_same_client_id_makes_one_turn(alice, fake) -> None:
    socket = await open_socket(alice)
    first = await socket.turn("Question")
    conversation = first[0]["conversation"]
    frame = {
        "type": "edit",
        "conversation": conversation,
        "message": first[0]["user_message"]["id"],
        "content": "Question, edited",
        "client_id": "same-edit",
    }
    await socket.send(**frame)
    done = await socket.until("done")
    await socket.send(**frame)
    again = await socket.until("start")

    assert again[-1]["reply"] == done[0]["reply"]
    assert len(fake.requests) == 2
    count = await database_sync_to_async(
        Message.objects.filter(conversation_id=conversation).count
    )()
    assert count == 4
    await socket.close()


async def test_editing_the_first_message_starts_a_new_root(alice, fake) -> None:
    socket = await open_socket(alice)
    conversation, first, _second = await two_turns(socket)

    await socket.send(
        type="edit",
        conversation=conversation,
        message=first[0]["user_message"]["id"],
        content="Another opening",
        client_id="edit-root",
    )
    events = await socket.until("done")

    assert (await message(events[0]["user_message"]["id"])).parent_id is None
    assert sent_messages(fake) == [("user", "Another opening")]
    await socket.close()


async def test_after_switching_back_the_next_send_follows_the_branch_shown(alice, fake) -> None:
    socket = await open_socket(alice)
    conversation, first, second = await two_turns(socket)
    await socket.send(
        type="edit",
        conversation=conversation,
        message=second[0]["user_message"]["id"],
        content="Edited second",
        client_id="edit-2",
    )
    await socket.until("done")

    # Back to the first version of the second question: its reply is the leaf.
    await socket.send(
        type="switch", conversation=conversation, leaf=second[0]["user_message"]["id"]
    )
    switched = await socket.until("switched")
    assert switched[-1]["leaf"] == second[0]["reply"]
    assert await current_leaf_of(conversation) == second[0]["reply"]

    await socket.turn("Third question", conversation=conversation)
    assert sent_messages(fake) == [
        ("user", "First question"),
        ("assistant", text_of(first)),
        ("user", "Second question"),
        ("assistant", text_of(second)),
        ("user", "Third question"),
    ]
    await socket.close()


async def test_regenerate_answers_the_question_of_the_branch_shown(alice, fake) -> None:
    socket = await open_socket(alice)
    conversation, first, second = await two_turns(socket)
    await socket.send(type="switch", conversation=conversation, leaf=first[0]["reply"])
    # The branch shown goes on to the newest message below: nothing is cut off.
    assert (await socket.until("switched"))[-1]["leaf"] == second[0]["reply"]
    assert await current_leaf_of(conversation) == second[0]["reply"]

    await socket.send(type="regenerate", conversation=conversation, reply=first[0]["reply"])
    events = await socket.until("done")

    assert events[0]["parent"] == first[0]["user_message"]["id"]
    assert sent_messages(fake) == [("user", "First question")]
    regenerated = await message(events[0]["reply"])
    assert str(regenerated.parent_id) == first[0]["user_message"]["id"]
    assert await current_leaf_of(conversation) == events[0]["reply"]

    # Without a reply id: the last reply shown, which is now the regenerated one.
    await socket.send(type="regenerate", conversation=conversation)
    again = await socket.until("done")
    assert again[0]["parent"] == first[0]["user_message"]["id"]
    await socket.close()


async def test_the_page_gets_the_whole_tree_and_marks_the_branch_shown(alice, fake) -> None:
    socket = await open_socket(alice)
    conversation, first, second = await two_turns(socket)
    await socket.send(type="regenerate", conversation=conversation)
    regenerated = await socket.until("done")
    await socket.send(type="switch", conversation=conversation, leaf=second[0]["reply"])
    await socket.until("switched")
    await socket.close()

    def page() -> list[dict[str, Any]]:
        client = Client()
        client.force_login(alice)
        return transcript_in(client.get(f"/c/{conversation}/").content.decode())

    items = await database_sync_to_async(page)()
    assert len(items) == 5
    shown = [item["id"] for item in items if item["shown"]]
    assert shown == [
        first[0]["user_message"]["id"],
        first[0]["reply"],
        second[0]["user_message"]["id"],
        second[0]["reply"],
    ]
    assert regenerated[0]["reply"] in [item["id"] for item in items]


def test_a_long_conversation_opens_with_a_bounded_number_of_queries(alice) -> None:
    conversation = Conversation.objects.create(owner=alice, title="Long", model="glm-5")
    parent = None
    for index in range(500):
        question = conversation.messages.create(role="user", content=f"Q{index}", parent=parent)
        parent = conversation.messages.create(
            role="assistant", content=f"A{index}", parent=question
        )
    conversation.current_leaf = parent
    conversation.save()
    client = Client()
    client.force_login(alice)

    with CaptureQueriesContext(connection) as queries:
        response = client.get(f"/c/{conversation.id}/")

    assert response.status_code == 200
    items = transcript_in(response.content.decode())
    assert len(items) == 1000 and all(item["shown"] for item in items)
    assert len(queries.captured_queries) <= 12, [q["sql"][:80] for q in queries.captured_queries]


async def test_switching_is_refused_while_a_reply_is_generating(alice, fake) -> None:
    socket = await open_socket(alice)
    first = await socket.turn("First question")
    conversation = first[0]["conversation"]
    fake.scenario = Scenario(tokens=300, delay=0.02)
    await socket.send_message("Long one", conversation=conversation)
    await socket.until("delta")

    await socket.send(type="switch", conversation=conversation, leaf=first[0]["reply"])
    refused = await socket.until("error")
    assert refused[-1]["code"] == "busy"

    await socket.send(type="stop", conversation=conversation)
    await socket.until("done")
    assert await current_leaf_of(conversation) != first[0]["reply"]
    await socket.close()


async def test_an_edit_while_generating_is_refused_and_saves_nothing(alice, fake) -> None:
    socket = await open_socket(alice)
    fake.scenario = Scenario(tokens=300, delay=0.02)
    await socket.send_message("Long one")
    start = (await socket.until("delta"))[0]
    conversation = start["conversation"]

    await socket.send(
        type="edit",
        conversation=conversation,
        message=start["user_message"]["id"],
        content="Changed my mind",
        client_id="edit-busy",
    )
    refused = await socket.until("error")
    assert refused[-1]["code"] == "busy"

    await socket.send(type="stop", conversation=conversation)
    await socket.until("done")
    count = await database_sync_to_async(
        Message.objects.filter(conversation_id=conversation).count
    )()
    assert count == 2
    await socket.close()


async def test_bad_edit_and_switch_frames_get_clear_errors(alice, fake) -> None:
    socket = await open_socket(alice)
    first = await socket.turn("Question")
    conversation = first[0]["conversation"]
    cases = [
        ({"message": first[0]["user_message"]["id"], "content": "  "}, "empty_message"),
        ({"message": first[0]["reply"], "content": "Edit a reply?"}, "not_found"),
        ({"message": "not-an-id", "content": "x"}, "bad_frame"),
        ({"message": 7, "content": "x"}, "bad_frame"),
    ]
    for fields, code in cases:
        await socket.send(type="edit", conversation=conversation, client_id="e", **fields)
        error = await socket.until("error")
        assert error[-1]["code"] == code, (fields, error)
    await socket.send(
        type="switch", conversation=conversation, leaf="00000000-0000-0000-0000-000000000000"
    )
    assert (await socket.until("error"))[-1]["code"] == "not_found"
    assert len(fake.requests) == 1
    await socket.close()


async def test_another_users_messages_are_not_found(alice, bob, fake) -> None:
    mine = await open_socket(alice)
    first = await mine.turn("Alice's secret")
    conversation = first[0]["conversation"]
    await mine.close()

    theirs = await open_socket(bob)
    frames = [
        {"type": "switch", "conversation": conversation, "leaf": first[0]["reply"]},
        {
            "type": "edit",
            "conversation": conversation,
            "message": first[0]["user_message"]["id"],
            "content": "Hijack",
            "client_id": "bob-edit",
        },
        {"type": "regenerate", "conversation": conversation, "reply": first[0]["reply"]},
        {"type": "continue", "conversation": conversation, "reply": first[0]["reply"]},
    ]
    for frame in frames:
        await theirs.send(**frame)
        error = await theirs.until("error")
        assert error[-1]["code"] == "not_found", frame
    assert len(fake.requests) == 1
    await theirs.close()


async def test_continue_streams_more_into_the_same_reply(alice, fake) -> None:
    cut = Scenario(tokens=6, reasoning_tokens=2, finish_reason="length")
    fake.scenario = cut
    socket = await open_socket(alice)
    first = await socket.turn("Write a lot")
    conversation, reply_id = first[0]["conversation"], first[0]["reply"]
    assert first[-1]["finish_reason"] == "length"
    partial = text_of(first)
    first_usage = first[-1]["usage"]

    more = Scenario(tokens=5, reasoning_tokens=0, finish_reason="stop")
    fake.scenario = more
    await socket.send(type="continue", conversation=conversation, reply=reply_id)
    events = await socket.until("done")

    start, done = events[0], events[-1]
    assert start["reply"] == reply_id and start["continued"] is True
    assert start["user_message"] is None
    added = "".join(content_tokens(more))
    assert text_of(events) == added, "deltas carry only the new text"
    assert sent_messages(fake) == [("user", "Write a lot"), ("assistant", partial)]
    assert done["finish_reason"] == "stop"

    saved = await message(reply_id)
    assert saved.content == partial + added
    assert saved.status == "complete" and saved.finish_reason == "stop"
    assert saved.completion_tokens == first_usage["completion_tokens"] + 5
    count = await database_sync_to_async(
        Message.objects.filter(conversation_id=conversation).count
    )()
    assert count == 2
    await socket.close()


async def test_a_socket_joining_a_continuation_gets_the_whole_text(alice, fake) -> None:
    fake.scenario = Scenario(tokens=6, reasoning_tokens=0, finish_reason="length")
    socket = await open_socket(alice)
    first = await socket.turn("Write a lot")
    conversation, reply_id = first[0]["conversation"], first[0]["reply"]
    partial = text_of(first)

    more = Scenario(tokens=200, reasoning_tokens=0, delay=0.01)
    fake.scenario = more
    await socket.send(type="continue", conversation=conversation, reply=reply_id)
    await socket.until("delta")
    other = await open_socket(alice)
    await other.send(type="join", conversation=conversation)
    events = await other.until("done")

    assert text_of(events) == partial + "".join(content_tokens(more))
    await socket.close()
    await other.close()


async def test_only_a_reply_cut_at_the_length_limit_can_be_continued(alice, fake) -> None:
    socket = await open_socket(alice)
    first = await socket.turn("Short answer please")
    conversation = first[0]["conversation"]

    await socket.send(type="continue", conversation=conversation, reply=first[0]["reply"])
    error = await socket.until("error")

    assert error[-1]["code"] == "cannot_continue"
    assert len(fake.requests) == 1
    await socket.close()
