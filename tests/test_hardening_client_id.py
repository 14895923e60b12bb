"""One client id is one message and one request, however its copies race: from
two sockets at once, on two database connections, into new conversations."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from bench.fake_upstream import Scenario
from chat.models import Conversation, Message
from chat.turns import starting
from tests.conftest import open_socket

pytestmark = pytest.mark.django_db(transaction=True)

on_postgresql = pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="PostgreSQL runs the copies at once; SQLite serialises all writers (and its test "
    "database is in memory, shared by threads through table locks)",
)


def messages_sent_as(user: Any, client_id: str) -> list[Message]:
    return list(Message.objects.filter(conversation__owner=user, client_id=client_id))


@pytest.fixture
def no_limits(settings: Any) -> None:
    # Without limits nothing locks a person's starts: only the database
    # constraint stands between the copies.
    settings.GLMWEB_LIMIT_CONCURRENT_GENERATIONS = 0


@on_postgresql
@pytest.mark.parametrize("limited", [False, True], ids=["no limits", "limits row locked"])
def test_copies_of_a_frame_on_two_connections_start_one_turn(
    alice: Any, settings: Any, limited: bool
) -> None:
    settings.GLMWEB_LIMIT_CONCURRENT_GENERATIONS = 3 if limited else 0
    for round_ in range(5):
        client_id = f"twice-{round_}"
        barrier = threading.Barrier(2)

        def send(_: int, client_id: str = client_id, barrier: Any = barrier) -> Any:
            try:
                barrier.wait()
                return starting.begin_send(alice.id, None, "Only once", client_id, {})
            finally:
                connection.close()

        with ThreadPoolExecutor(2) as pool:
            turns = list(pool.map(send, range(2)))

        sent = messages_sent_as(alice, client_id)
        assert len(sent) == 1, f"round {round_}: {len(sent)} messages"
        assert sent[0].children.count() == 1
        assert {turn.reply_id for turn in turns} == {sent[0].children.get().id}
        assert sorted(turn.is_new for turn in turns) == [False, True]
        Message.objects.filter(id=turns[0].reply_id).update(status=Message.Status.COMPLETE)
    assert Conversation.objects.filter(owner=alice).count() == 5


async def test_copies_of_a_frame_from_two_sockets_make_one_request(
    alice: Any, fake: Any, no_limits: None
) -> None:
    fake.scenario = Scenario(tokens=20, delay=0.01)  # the turn still runs when its copy comes
    first, second = await open_socket(alice), await open_socket(alice)
    # At once, or the second just after the first began (then the two starts
    # don't share a batch: the second waits for the first's).
    for round_, lag in enumerate([0, 0.001, 0.002, 0.003, 0.005, 0.008]):
        client_id = f"both-sockets-{round_}"

        async def second_copy(client_id: str = client_id, lag: float = lag) -> None:
            await asyncio.sleep(lag)
            await second.send_message("Only once", client_id=client_id)

        await asyncio.gather(first.send_message("Only once", client_id=client_id), second_copy())
        ends = await asyncio.gather(first.until("done"), second.until("done"))

        starts = [next(e for e in events if e["type"] == "start") for events in ends]
        assert starts[0]["reply"] == starts[1]["reply"], f"round {round_}"
        sent = await database_sync_to_async(messages_sent_as)(alice, client_id)
        assert len(sent) == 1, f"round {round_}: {len(sent)} messages"
        assert len(fake.requests) == round_ + 1, f"round {round_}"
    await first.close()
    await second.close()


def test_a_client_id_is_one_turn_across_conversations(alice: Any, bob: Any) -> None:
    """A frame replayed into another conversation is the same turn, not a new one."""
    first = starting.begin_send(alice.id, None, "Hello", "once", {})
    Message.objects.filter(id=first.reply_id).update(status=Message.Status.COMPLETE)
    other = starting.begin_send(alice.id, None, "Another chat", "other", {})
    Message.objects.filter(id=other.reply_id).update(status=Message.Status.COMPLETE)

    again = starting.begin_send(alice.id, str(other.conversation_id), "Hello", "once", {})
    bobs = starting.begin_send(bob.id, None, "Hello", "once", {})

    assert (again.reply_id, again.is_new) == (first.reply_id, False)
    assert bobs.is_new  # bob's client ids are his own
    assert len(messages_sent_as(alice, "once")) == 1


def test_the_migration_keeps_the_first_of_a_persons_repeated_client_ids(alice: Any) -> None:
    """Older data may hold one client id in two conversations: the later copy loses it."""
    before = [("chat", "0005_message_client_id_index")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    old = executor.loader.project_state(before).apps
    conversations = old.get_model("chat", "Conversation").objects
    messages = old.get_model("chat", "Message").objects
    sent = []
    for title in ("First", "Second"):
        conversation = conversations.create(owner_id=alice.id, title=title, model="glm-5")
        sent.append(messages.create(conversation=conversation, role="user", client_id="twice"))
    other = conversations.create(owner_id=alice.id, title="Other", model="glm-5")
    messages.create(conversation=other, role="user", client_id="once")

    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes("chat"))

    first, second = (Message.objects.get(id=message.id) for message in sent)
    assert (first.client_id, first.sender_id) == ("twice", alice.id)
    assert (second.client_id, second.sender_id) == ("", None)
    assert Message.objects.get(client_id="once").sender_id == alice.id
