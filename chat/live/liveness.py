"""Sockets following a turn on another worker hear when that worker dies.

A socket follows a turn streaming on another worker through the channel layer
(chat.live.consumer). A killed worker sends no ``done`` or ``error``: the tab
would show Stop for good and its sends be refused as busy. So one task per
process watches the followed turns that went quiet (no event for
QUIET_SECONDS): every CHECK_SECONDS it asks the database, once for all of
them, whether their worker still beats (chat.turns.heartbeat). The replies of a dead
worker are marked interrupted, and the sockets following them end the turn
with the text of its last checkpoint. Nothing is asked while no followed turn
is quiet, and no socket polls on its own.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from typing import Any, Protocol

from channels.db import database_sync_to_async

from chat.models import Message
from chat.turns import heartbeat

log = logging.getLogger(__name__)

QUIET_SECONDS = 2.0
CHECK_SECONDS = 1.0


class Follower(Protocol):
    # The conversations whose turn on another worker this socket follows.
    following: set[str]

    def turn_interrupted(self, state: dict[str, Any]) -> None:
        """End the followed turn: its worker died; ``state`` is what was saved."""


# The sockets of this process following a turn elsewhere, by conversation, and
# when each conversation's turn was last heard from.
_followers: dict[str, weakref.WeakSet[Any]] = {}
_heard: dict[str, float] = {}
_watcher: asyncio.Task[None] | None = None


def follow(conversation: str, socket: Follower) -> None:
    _followers.setdefault(conversation, weakref.WeakSet()).add(socket)
    _heard[conversation] = time.monotonic()
    _keep_watching()


def heard(conversation: str) -> None:
    """An event of the conversation's turn came through the layer: its worker lives."""
    if conversation in _heard:
        _heard[conversation] = time.monotonic()


def _keep_watching() -> None:
    global _watcher
    loop = asyncio.get_running_loop()
    if _watcher is None or _watcher.done() or _watcher.get_loop() is not loop:
        _watcher = loop.create_task(_watch_followed_turns(), name="followed-turns")


async def _watch_followed_turns() -> None:
    while _followers:
        await asyncio.sleep(CHECK_SECONDS)
        quiet = _quiet_turns(time.monotonic())
        if not quiet:
            continue
        try:
            ended = await database_sync_to_async(end_abandoned_turns)(quiet)
        except Exception:
            log.warning("checking followed turns failed", exc_info=True)
            continue
        for conversation, state in ended.items():
            sockets = _followers.pop(conversation, weakref.WeakSet())
            _heard.pop(conversation, None)
            for socket in list(sockets):
                if state is not None and conversation in socket.following:
                    socket.turn_interrupted(state)


def _quiet_turns(now: float) -> list[str]:
    quiet = []
    for conversation, sockets in list(_followers.items()):
        if not any(conversation in socket.following for socket in sockets):
            del _followers[conversation]  # each socket heard the end, or left
            _heard.pop(conversation, None)
        elif now - _heard.get(conversation, now) >= QUIET_SECONDS:
            quiet.append(conversation)
    return quiet


def end_abandoned_turns(conversations: list[str]) -> dict[str, dict[str, Any] | None]:
    """Of these conversations, those whose turn no longer streams, each with its end.

    A reply whose worker died is marked interrupted here. The end is the
    interrupted reply's saved state, or None when the turn ended otherwise
    (its own ``done`` or ``error`` is on its way). A conversation whose reply
    still streams on a live worker is left out.
    """
    replies = Message.objects.filter(conversation_id__in=conversations, role=Message.Role.ASSISTANT)
    streaming = list(
        replies.filter(status=Message.Status.STREAMING).values_list(
            "id", "worker", "updated_at", "conversation_id"
        )
    )
    dead = set(heartbeat.abandoned(row[:3] for row in streaming))
    if dead and (count := Message.objects.filter(id__in=dead).mark_interrupted()):
        log.warning("marked replies of a dead worker interrupted", extra={"count": count})
    alive = {str(row[3]) for row in streaming if row[0] not in dead}
    ended: dict[str, dict[str, Any] | None] = {}
    for conversation in conversations:
        if conversation not in alive:
            # Interrupted here, or already by another worker or a send's check.
            reply = replies.filter(conversation_id=conversation).order_by("-updated_at").first()
            ended[conversation] = None
            if reply is not None and reply.status == Message.Status.INTERRUPTED:
                ended[conversation] = reply_state(reply)
    return ended


def saved_reply_state(conversation_id: str) -> dict[str, Any] | None:
    """The reply being written (else the newest) as a snapshot's fields, as saved."""
    replies = Message.objects.filter(
        conversation_id=conversation_id, role=Message.Role.ASSISTANT
    ).order_by("-created_at")
    # A continued reply streams again while a newer sibling may exist.
    reply = replies.filter(status=Message.Status.STREAMING).first() or replies.first()
    return None if reply is None else reply_state(reply)


def reply_state(reply: Message) -> dict[str, Any]:
    return {
        "conversation": str(reply.conversation_id),
        "reply": str(reply.id),
        "content": reply.content,
        "reasoning": reply.reasoning,
        "status": reply.status,
        "model": reply.model,
        "parent": str(reply.parent_id) if reply.parent_id else None,
        "error_message": reply.error_message,
    }


def interrupted_turn_events(state: dict[str, Any], seq: int) -> list[dict[str, Any]]:
    """A followed turn's end, its worker dead: a snapshot of the saved text, then the error."""
    fields = ("conversation", "reply", "content", "reasoning", "status", "model", "parent")
    snapshot = {"type": "snapshot", "seq": seq, **{field: state[field] for field in fields}}
    error = {
        "type": "error",
        "conversation": state["conversation"],
        "reply": state["reply"],
        "seq": seq + 1,
        "code": "interrupted",
        "message": state["error_message"],
        "status": "interrupted",
        "retryable": True,
        "content": state["content"],
        "reasoning": state["reasoning"],
    }
    return [snapshot, error]
