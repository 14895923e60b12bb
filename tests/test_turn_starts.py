"""Sends that arrive together start together: chat.turns.starting.begin_sends saves
them in one transaction, and a refusal or a failure stays that send's own."""

from __future__ import annotations

import os
from typing import Any

import pytest
from django.db import IntegrityError, connection
from django.test.utils import CaptureQueriesContext

from chat.models import Conversation, Message, UserLimits
from chat.turns import starting

on_postgresql = os.environ.get("DATABASE_URL", "").startswith("postgres")

pytestmark = pytest.mark.django_db(transaction=True)


def send(user: Any, content: str, client_id: str) -> tuple[Any, ...]:
    return (user.id, None, content, client_id, {})


def transactions_of(replies: list[starting.Turn]) -> int:
    """How many transactions wrote these replies."""
    ids = [turn.reply_id for turn in replies]
    with connection.cursor() as cursor:
        # Every row a PostgreSQL transaction writes carries its id as xmin.
        sql = "SELECT COUNT(DISTINCT xmin::text) FROM chat_message WHERE id = ANY(%s)"
        cursor.execute(sql, [ids])
        return cursor.fetchone()[0]


def test_a_batch_of_sends_is_one_transaction(alice: Any, bob: Any) -> None:
    sends = [send(alice, "One", "a1"), send(bob, "Two", "b1"), send(alice, "Three", "a2")]

    with CaptureQueriesContext(connection) as queries:
        turns = starting.begin_sends(sends)

    assert [turn.user_message["content"] for turn in turns] == ["One", "Two", "Three"]
    if on_postgresql:
        assert transactions_of(turns) == 1
    else:
        assert [query["sql"] for query in queries if query["sql"].startswith("BEGIN")] == [
            "BEGIN IMMEDIATE"
        ]
    for turn in turns:
        reply = Message.objects.get(id=turn.reply_id)
        assert reply.status == Message.Status.STREAMING
        assert reply.conversation.current_leaf_id == reply.id


def test_a_refused_send_writes_nothing_and_the_others_start(alice: Any, bob: Any) -> None:
    UserLimits.objects.create(user=bob, concurrent_generations=1)
    busy = starting.begin_send(*send(bob, "Already running", "b0"))
    sends = [
        send(alice, "Hello", "a1"),
        send(bob, "One more", "b1"),
        send(alice, "Hello", "a1"),  # the same frame again, as after a reconnect
    ]

    first, refused, again = starting.begin_sends(sends)

    assert isinstance(refused, starting.TurnRefused)
    assert refused.code == "limit_reached"
    assert first.is_new and not again.is_new
    assert again.reply_id == first.reply_id
    assert Conversation.objects.filter(owner=alice).count() == 1
    assert list(Message.objects.filter(conversation__owner=bob)) == list(
        Message.objects.filter(conversation_id=busy.conversation_id)
    )


def test_a_failed_send_fails_alone(alice: Any, bob: Any) -> None:
    nobody = type(alice)(id=alice.id + bob.id + 1000)  # no such user: its rows break a key
    sends = [send(alice, "Mine", "a1"), send(nobody, "Lost", "n1"), send(bob, "Yours", "b1")]

    mine, failed, yours = starting.begin_sends(sends)

    assert isinstance(failed, IntegrityError)
    assert mine.user_message["content"] == "Mine"
    assert yours.user_message["content"] == "Yours"
    saved = Message.objects.filter(role=Message.Role.USER).order_by("content")
    assert [message.content for message in saved] == ["Mine", "Yours"]
    if on_postgresql:
        assert transactions_of([mine, yours]) == 2  # each started again on its own
