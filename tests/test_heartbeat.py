"""Which streaming replies a live worker still streams, by its heartbeat."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from chat.models import Conversation, Message, Worker
from chat.turns import heartbeat

pytestmark = pytest.mark.django_db


def make_reply(owner: Any, worker: str, seconds_ago: float) -> Message:
    conversation = Conversation.objects.create(owner=owner, title="Beats")
    reply = Message.objects.create(
        conversation=conversation, role="assistant", status="streaming", worker=worker
    )
    Message.objects.filter(id=reply.id).update(
        updated_at=timezone.now() - timedelta(seconds=seconds_ago)
    )
    reply.refresh_from_db()
    return reply


def rows(*replies: Message) -> list[tuple[Any, str, Any]]:
    return [(reply.id, reply.worker, reply.updated_at) for reply in replies]


def test_a_reply_is_abandoned_when_its_worker_stopped_beating(alice: Any) -> None:
    heartbeat.beat("alive")
    Worker.objects.create(id="killed", last_seen=timezone.now() - timedelta(seconds=20))
    streamed = make_reply(alice, "alive", 20)
    orphaned = make_reply(alice, "killed", 20)
    just_started = make_reply(alice, "killed", 1)  # its worker was idle until now
    unknown_worker = make_reply(alice, "old-version", 20)
    long_gone = make_reply(alice, "old-version", 60)

    found = heartbeat.abandoned(rows(streamed, orphaned, just_started, unknown_worker, long_gone))

    assert found == [orphaned.id, long_gone.id]


def test_a_beat_updates_the_workers_row(alice: Any) -> None:
    Worker.objects.create(id="w", last_seen=timezone.now() - timedelta(hours=1))
    heartbeat.beat("w")
    assert timezone.now() - Worker.objects.get(id="w").last_seen < timedelta(seconds=5)
