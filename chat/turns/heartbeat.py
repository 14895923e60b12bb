"""Which workers are alive: a heartbeat each worker writes while it streams replies.

A worker running turns writes its ``Worker`` row with each checkpoint tick, at
most HEARTBEAT_SECONDS apart, in the same transaction (chat.turns.saving). A
streaming reply that neither it nor its worker's heartbeat has touched for
DEAD_AFTER_SECONDS is abandoned: its worker was killed. Sockets on other
workers (chat.live.liveness) and a send's busy check learn that within seconds,
where the stale sweep (GLMWEB_STALE_STREAM_SECONDS) finds it after half a
minute. Plain sync functions, for a database thread.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from chat.models import Worker

HEARTBEAT_SECONDS = 2.0
# Three missed heartbeats: a live worker whose database calls queue for a few
# seconds under load is not taken for dead.
DEAD_AFTER_SECONDS = 7.0
# Rows of workers gone this long are deleted when a worker starts.
FORGET_AFTER = timedelta(days=1)


def beat(worker_id: str) -> None:
    """Record that this worker is alive: one INSERT … ON CONFLICT UPDATE."""
    Worker.objects.bulk_create(
        [Worker(id=worker_id, last_seen=timezone.now())],
        update_conflicts=True,
        unique_fields=["id"],
        update_fields=["last_seen"],
    )


def abandoned(replies: Iterable[tuple[uuid.UUID, str, datetime]]) -> list[uuid.UUID]:
    """The streaming replies among ``(id, worker, updated_at)`` that no live worker streams.

    A reply touched recently is alive whatever its worker's row says: its worker
    may have been idle (no heartbeat) until it started it. Every worker writes
    its row before its first turn (chat.turns.recovery.recover_once); one with no
    row at all (not yet upgraded) is judged by the stale sweep's rule alone.
    """
    replies = list(replies)
    now = timezone.now()
    stale_before = now - timedelta(seconds=settings.GLMWEB_STALE_STREAM_SECONDS)
    dead_before = now - timedelta(seconds=DEAD_AFTER_SECONDS)
    quiet = {worker for _, worker, updated_at in replies if updated_at < dead_before}
    last_seen = dict(Worker.objects.filter(id__in=quiet).values_list("id", "last_seen"))
    return [
        pk
        for pk, worker, updated_at in replies
        if updated_at < stale_before
        or (updated_at < dead_before and last_seen.get(worker, now) < dead_before)
    ]


def forget_gone_workers() -> None:
    # A worker id names a process (hostname-pid): each restart leaves a row.
    Worker.objects.filter(last_seen__lt=timezone.now() - FORGET_AFTER).delete()
