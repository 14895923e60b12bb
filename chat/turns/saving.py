"""What the database sees of a running turn: checkpoints of its text, then its outcome.

Never a write per token: one task per event loop checkpoints every turn
running there (and beats for the worker, chat.turns.heartbeat) in one commit
per tick, and each reply is saved once more at its end, with its line in the
usage ledger.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from channels.db import database_sync_to_async
from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from chat import upstream
from chat.models import Message
from chat.turns import heartbeat
from chat.usage import ledger

log = logging.getLogger(__name__)

# A reply's first checkpoint comes this long after its first token (or sooner
# with a shorter GLMWEB_CHECKPOINT_SECONDS): a worker killed a few seconds into
# a reply keeps its start, and the write lands within a second.
FIRST_CHECKPOINT_SECONDS = 0.75


@dataclass(frozen=True)
class ReplyOutcome:
    content: str
    reasoning: str
    status: str
    finish_reason: str
    error_code: str
    error_message: str
    usage: upstream.Usage
    usage_estimated: bool
    ttft_ms: int | None
    duration_ms: int

    def usage_dict(self) -> dict[str, Any]:
        return {
            "prompt_tokens": self.usage.prompt_tokens,
            "completion_tokens": self.usage.completion_tokens,
            "total_tokens": self.usage.total_tokens,
            "estimated": self.usage_estimated,
        }


@database_sync_to_async
def save_reply(
    reply_id: uuid.UUID, outcome: ReplyOutcome, prior_usage: upstream.Usage | None = None
) -> None:
    # The reply and its line in the usage ledger (chat.usage.ledger) are saved together.
    with transaction.atomic():
        saved = Message.objects.filter(id=reply_id).update(
            content=outcome.content,
            reasoning=outcome.reasoning,
            status=outcome.status,
            finish_reason=outcome.finish_reason,
            error_code=outcome.error_code,
            error_message=outcome.error_message,
            prompt_tokens=outcome.usage.prompt_tokens,
            completion_tokens=outcome.usage.completion_tokens,
            total_tokens=outcome.usage.total_tokens,
            usage_estimated=outcome.usage_estimated,
            ttft_ms=outcome.ttft_ms,
            duration_ms=outcome.duration_ms,
            updated_at=timezone.now(),
        )
        if saved:
            ledger.record_reply(reply_id)
        if saved and prior_usage is not None:
            # A continuation: the ledger counted only this request's tokens
            # (the earlier part was counted when it was saved); the reply shows both.
            Message.objects.filter(id=reply_id).update(
                prompt_tokens=F("prompt_tokens") + prior_usage.prompt_tokens,
                completion_tokens=F("completion_tokens") + prior_usage.completion_tokens,
                total_tokens=F("total_tokens") + prior_usage.total_tokens,
            )


# A reply's id and its text (content, reasoning) so far.
Checkpoint = tuple[uuid.UUID, str, str]


@database_sync_to_async
def save_checkpoints(texts: list[Checkpoint], worker_id: str = "") -> None:
    """Save the replies' text so far and, with ``worker_id``, that worker's heartbeat."""
    # One statement run for every reply (on PostgreSQL one round trip, pipelined),
    # not an ORM update per reply: a checkpoint can hold hundreds.
    message = Message._meta
    sql = f"""
        UPDATE {message.db_table} SET content = %s, reasoning = %s, updated_at = %s
        WHERE {message.pk.column} = %s AND status = %s
    """
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    streaming = Message.Status.STREAMING.value
    rows = [
        (content, reasoning, now, message.pk.get_db_prep_value(reply_id, connection), streaming)
        for reply_id, content, reasoning in texts
    ]
    with transaction.atomic(), connection.cursor() as cursor:
        if worker_id:
            heartbeat.beat(worker_id)
        if rows:
            cursor.executemany(sql, rows)


def first_checkpoint_seconds() -> float:
    return min(FIRST_CHECKPOINT_SECONDS, settings.GLMWEB_CHECKPOINT_SECONDS)


class Checkpointed(Protocol):
    """A running turn, as the checkpointer sees it (chat.turns.runner.TurnRunner)."""

    def checkpoint_due(self, now: float) -> Checkpoint | None: ...

    def first_checkpoint_at(self) -> float | None: ...


class Checkpointer:
    """One task checkpoints every turn running on this event loop, and beats for the worker.

    Each tick is one trip to the database thread and one commit, however many
    turns run: the worker's heartbeat (chat.turns.heartbeat) and the text of each
    turn that is due. Ticks come every GLMWEB_CHECKPOINT_SECONDS (at most
    HEARTBEAT_SECONDS apart), and sooner when a turn's first checkpoint is due.
    The task ends once no turn runs.
    """

    def __init__(self, running: Callable[[], Iterable[Checkpointed]]) -> None:
        self.running = running
        # A turn just started needs no heartbeat yet: its reply row is fresh.
        self.next_tick = time.monotonic() + self.interval()
        self.moved = asyncio.Event()
        self.task = asyncio.get_running_loop().create_task(self.run(), name="checkpoints")

    def no_later_than(self, when: float) -> None:
        if when < self.next_tick:
            self.next_tick = when
            self.moved.set()

    @staticmethod
    def interval() -> float:
        return min(settings.GLMWEB_CHECKPOINT_SECONDS, heartbeat.HEARTBEAT_SECONDS)

    async def run(self) -> None:
        while True:
            await self.sleep_until_tick()
            runners = list(self.running())
            if not runners:
                return
            now = time.monotonic()
            due = [text for runner in runners if (text := runner.checkpoint_due(now))]
            self.next_tick = float("inf")  # until this tick's write is done
            try:
                await save_checkpoints(due, settings.GLMWEB_WORKER_ID)
            except Exception:
                log.exception("checkpoint failed", extra={"replies": len(due)})
            firsts = [runner.first_checkpoint_at() for runner in self.running()]
            soonest = [at for at in firsts if at is not None]
            self.next_tick = min(self.next_tick, time.monotonic() + self.interval(), *soonest)

    async def sleep_until_tick(self) -> None:
        while (delay := self.next_tick - time.monotonic()) > 0:
            self.moved.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.moved.wait(), delay)
