"""Replies a worker left streaming when it restarted or died are marked interrupted.

Their checkpointed text stays. A worker marks its own earlier run's replies
once, before its first turn; replies of a worker killed for good are found by
its stopped heartbeat (chat.turns.heartbeat) or, at the latest, by the stale
sweep. Plain sync functions, for a database thread.
"""

from __future__ import annotations

import logging
import threading

from django.conf import settings

from chat.models import Message
from chat.turns import heartbeat

log = logging.getLogger(__name__)

_recovered = False
# A page view (on a thread of its own) and the first socket may both recover; a
# turn started meanwhile must wait for it, or it would be marked interrupted too.
_recovering = threading.Lock()


def recover_worker_replies(worker_id: str) -> int:
    """At start-up: what this worker was streaming before it restarted is dead."""
    count = Message.objects.filter(worker=worker_id).mark_interrupted()
    if count:
        log.warning("marked replies interrupted after restart", extra={"count": count})
    return count


def recovered() -> bool:
    """Whether this process has marked its earlier run's replies (no trip to find out)."""
    return _recovered


def recover_once() -> None:
    global _recovered
    with _recovering:
        if not _recovered:
            recover_worker_replies(settings.GLMWEB_WORKER_ID)
            heartbeat.forget_gone_workers()
            # Before its first turn: a worker killed before its first tick is
            # found dead by its row too (chat.turns.heartbeat.abandoned).
            heartbeat.beat(settings.GLMWEB_WORKER_ID)
            _recovered = True
