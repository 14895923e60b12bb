"""One chat turn, from a user's send to the saved reply.

A turn runs in its own task, apart from the socket that asked for it: closing
the tab doesn't stop it, only Stop (from any socket, on any worker) or a
limit does. It speaks to sockets through the channel layer:

- ``conversation_group``: every socket showing the conversation receives the
  numbered events (``start``, ``delta``, ``done``/``error``);
- ``control_group``: the running turn receives ``stop`` and snapshot requests.

The database sees the user message and an empty reply at the start, a
checkpoint of the text at most every few seconds, and the final reply: never a
write per token, never a synchronous query inside the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from chat import demo, limits, upstream, usage
from chat.models import Conversation, Message
from chat.params import InvalidParams, clean_params

log = logging.getLogger(__name__)

TITLE_CHARS = 60


class TurnRefused(Exception):
    """A send or regenerate that can't start; ``code`` is a protocol error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def conversation_group(conversation_id: uuid.UUID | str) -> str:
    return f"conv.{uuid.UUID(str(conversation_id)).hex}"


def control_group(conversation_id: uuid.UUID | str) -> str:
    return f"ctl.{uuid.UUID(str(conversation_id)).hex}"


# --- Starting a turn (database side, sync) ------------------------------------


@dataclass
class Turn:
    """Everything a turn needs once it runs: finished data, no querysets."""

    conversation_id: uuid.UUID
    reply_id: uuid.UUID
    parent_id: uuid.UUID
    title: str
    model: str
    request: upstream.ChatRequest
    user_message: dict[str, Any] | None
    is_new: bool = True

    def start_event(self) -> dict[str, Any]:
        return {
            "type": "start",
            "conversation": str(self.conversation_id),
            "reply": str(self.reply_id),
            "seq": 0,
            "title": self.title,
            "model": self.model,
            "user_message": self.user_message,
            "parent": str(self.parent_id),
        }


def begin_send(
    user_id: int,
    conversation_id: str | None,
    content: str,
    client_id: str,
    params: dict[str, Any],
) -> Turn:
    """Save the user message and an empty reply; answer a resent frame with its turn."""
    try:
        cleaned = clean_params(params)
    except InvalidParams as error:
        raise TurnRefused("bad_params", str(error)) from None
    existing = _turn_for_client_id(user_id, client_id)
    if existing is not None:
        return existing
    try:
        with transaction.atomic():
            if (refusal := limits.refusal_for(user_id)) is not None:
                raise TurnRefused("limit_reached", refusal)
            conversation = _lock_or_create_conversation(user_id, conversation_id, content)
            if cleaned:
                conversation.params = {**conversation.params, **cleaned}
            _refuse_if_generating(conversation)
            history = _current_branch(conversation)
            user_message = conversation.messages.create(
                role=Message.Role.USER,
                content=content,
                client_id=client_id,
                parent_id=history[-1].id if history else None,
            )
            reply = _create_reply(conversation, parent=user_message)
            conversation.save(update_fields=["params", "title", "updated_at"])
    except IntegrityError:
        # Two copies of one frame raced past the lookup: the unique client id
        # let exactly one through, so answer with that one.
        existing = _turn_for_client_id(user_id, client_id)
        if existing is None:
            raise
        return existing
    return _make_turn(conversation, [*history, user_message], reply, user_message)


def begin_regenerate(user_id: int, conversation_id: str) -> Turn:
    """Write a new reply to the last user message; the earlier reply stays as a branch."""
    with transaction.atomic():
        if (refusal := limits.refusal_for(user_id)) is not None:
            raise TurnRefused("limit_reached", refusal)
        conversation = _lock_conversation(user_id, conversation_id)
        _refuse_if_generating(conversation)
        history = _current_branch(conversation)
        while history and history[-1].role != Message.Role.USER:
            history.pop()
        if not history:
            raise TurnRefused("not_found", "There is no message to answer in this conversation.")
        reply = _create_reply(conversation, parent=history[-1])
        conversation.save(update_fields=["updated_at"])
    return _make_turn(conversation, history, reply, None)


def _turn_for_client_id(user_id: int, client_id: str) -> Turn | None:
    user_message = (
        Message.objects.filter(conversation__owner_id=user_id, client_id=client_id)
        .select_related("conversation")
        .first()
    )
    if user_message is None:
        return None
    reply = user_message.children.order_by("created_at").first()
    if reply is None:
        return None
    conversation = user_message.conversation
    turn = _make_turn(conversation, [user_message], reply, user_message)
    turn.is_new = False
    return turn


def _lock_or_create_conversation(
    user_id: int, conversation_id: str | None, first_message: str
) -> Conversation:
    if conversation_id is not None:
        return _lock_conversation(user_id, conversation_id)
    return Conversation.objects.create(
        owner_id=user_id,
        title=title_from(first_message),
        model=settings.UPSTREAM_MODEL,
    )


def _lock_conversation(user_id: int, conversation_id: str) -> Conversation:
    # The row lock serialises concurrent sends into one conversation, so the
    # "already generating" check below can't be raced (PostgreSQL; SQLite's
    # IMMEDIATE transactions serialise all writers anyway).
    try:
        return Conversation.objects.select_for_update().get(id=conversation_id, owner_id=user_id)
    except (Conversation.DoesNotExist, ValueError, TypeError):
        raise TurnRefused("not_found", "That conversation doesn't exist.") from None


def _refuse_if_generating(conversation: Conversation) -> None:
    streaming = conversation.messages.filter(status=Message.Status.STREAMING)
    stale_before = timezone.now() - timedelta(seconds=settings.GLMWEB_STALE_STREAM_SECONDS)
    mark_interrupted(streaming.filter(updated_at__lt=stale_before))
    if streaming.exists():
        raise TurnRefused("busy", "A reply is already being generated in this conversation.")


def _create_reply(conversation: Conversation, parent: Message) -> Message:
    return conversation.messages.create(
        role=Message.Role.ASSISTANT,
        status=Message.Status.STREAMING,
        parent=parent,
        model=conversation.model,
        worker=settings.GLMWEB_WORKER_ID,
    )


def _current_branch(conversation: Conversation) -> list[Message]:
    """The messages shown: from the newest message up through its parents."""
    messages = list(conversation.messages.order_by("created_at"))
    return branch_ending_at(messages[-1], messages) if messages else []


def branch_ending_at(leaf: Message, messages: list[Message]) -> list[Message]:
    by_id = {message.id: message for message in messages}
    branch: list[Message] = []
    node: Message | None = leaf
    while node is not None:
        branch.append(node)
        node = by_id.get(node.parent_id) if node.parent_id else None
    branch.reverse()
    return branch


def _make_turn(
    conversation: Conversation,
    history: list[Message],
    reply: Message,
    user_message: Message | None,
) -> Turn:
    return Turn(
        conversation_id=conversation.id,
        reply_id=reply.id,
        parent_id=reply.parent_id,
        title=str(conversation),
        model=reply.model,
        request=build_request(conversation, history),
        user_message=None
        if user_message is None
        else {
            "id": str(user_message.id),
            "content": user_message.content,
            "client_id": user_message.client_id,
        },
    )


def build_request(conversation: Conversation, history: list[Message]) -> upstream.ChatRequest:
    messages = []
    if conversation.system_prompt:
        messages.append({"role": "system", "content": conversation.system_prompt})
    for message in history:
        # An empty reply (failed before its first token) would only confuse the model.
        if message.content:
            messages.append({"role": message.role, "content": message.content})
    params = conversation.params
    return upstream.ChatRequest(
        model=conversation.model,
        messages=messages,
        max_tokens=params.get("max_tokens"),
        temperature=params.get("temperature"),
        top_p=params.get("top_p"),
        stop=params.get("stop"),
    )


def title_from(text: str) -> str:
    line = " ".join(text.split())
    if len(line) <= TITLE_CHARS:
        return line
    return line[: TITLE_CHARS - 1].rsplit(" ", 1)[0] + "…"


# --- Interrupted replies --------------------------------------------------------


def mark_interrupted(replies: Any) -> int:
    """Mark replies that no live task streams any more; their checkpointed text stays."""
    return replies.filter(status=Message.Status.STREAMING).update(
        status=Message.Status.INTERRUPTED,
        error_code="interrupted",
        error_message=INTERRUPTED_MESSAGE,
        updated_at=timezone.now(),
    )


INTERRUPTED_MESSAGE = "The reply was interrupted by a server restart. The text so far is kept."


def recover_worker_replies(worker_id: str) -> int:
    """At start-up: what this worker was streaming before it restarted is dead."""
    count = mark_interrupted(Message.objects.filter(worker=worker_id))
    if count:
        log.warning("marked replies interrupted after restart", extra={"count": count})
    return count


def sweep_stale_replies() -> int:
    """Replies whose worker stopped checkpointing (it died and never came back)."""
    stale_before = timezone.now() - timedelta(seconds=settings.GLMWEB_STALE_STREAM_SECONDS)
    return mark_interrupted(Message.objects.filter(updated_at__lt=stale_before))


_recovered = False


def recover_once() -> None:
    global _recovered
    if not _recovered:
        _recovered = True
        recover_worker_replies(settings.GLMWEB_WORKER_ID)


# --- Running a turn (event loop side) ------------------------------------------

# Turns running in this process, by conversation id. Holding the task here keeps
# it alive after the socket that started it goes away.
RUNNING: dict[uuid.UUID, TurnRunner] = {}


async def start(turn: Turn) -> None:
    """Run the turn in the background; its events go to the conversation group."""
    if not turn.is_new:
        return
    runner = TurnRunner(turn)
    RUNNING[turn.conversation_id] = runner
    runner.task = asyncio.create_task(runner.run(), name=f"turn-{turn.reply_id}")


def upstream_config() -> upstream.UpstreamConfig:
    return upstream.UpstreamConfig(
        base_url=settings.UPSTREAM_BASE_URL,
        api_key=settings.UPSTREAM_API_KEY,
        connect_timeout=settings.UPSTREAM_CONNECT_TIMEOUT,
        chunk_timeout=settings.UPSTREAM_CHUNK_TIMEOUT,
        deadline=settings.UPSTREAM_DEADLINE,
        max_retries=settings.UPSTREAM_MAX_RETRIES,
        max_retry_wait=settings.UPSTREAM_MAX_RETRY_WAIT,
        max_connections=settings.UPSTREAM_MAX_CONNECTIONS,
        keepalive_connections=settings.UPSTREAM_KEEPALIVE_CONNECTIONS,
    )


def event_source(request: upstream.ChatRequest) -> AsyncIterator[upstream.Event]:
    if settings.GLMWEB_DEMO_MODEL:
        return demo.stream_demo(request)
    return upstream.stream_chat(request, upstream_config())


@dataclass
class TurnRunner:
    turn: Turn
    task: asyncio.Task[None] | None = None
    content: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    seq: int = 0
    finish_reason: str = ""
    usage: upstream.Usage | None = None
    stop_requested: bool = False
    started: float = field(default_factory=time.monotonic)
    first_token_at: float | None = None
    _pending_content: list[str] = field(default_factory=list)
    _pending_reasoning: list[str] = field(default_factory=list)
    _flush_handle: asyncio.TimerHandle | None = None
    _outbox: list[tuple[str | None, dict[str, Any]]] = field(default_factory=list)
    _sender: asyncio.Task[None] | None = None
    _stream_task: asyncio.Task[None] | None = None

    async def run(self) -> None:
        layer = get_channel_layer()
        # The default prefix matters on Redis: all of a process's channels must
        # share one inbox, or this receive starves behind the consumers'.
        control_channel = await layer.new_channel()
        control = control_group(self.turn.conversation_id)
        await layer.group_add(control, control_channel)
        listener = asyncio.create_task(self._listen(layer, control_channel))
        checkpoints = asyncio.create_task(self._checkpoint_periodically())
        try:
            self._send_soon(self.turn.start_event())
            await self._stream_and_save()
        finally:
            checkpoints.cancel()
            await layer.group_discard(control, control_channel)
            await self._end_listener(layer, control_channel, listener)
            RUNNING.pop(self.turn.conversation_id, None)

    async def _end_listener(self, layer: Any, channel: str, listener: asyncio.Task[None]) -> None:
        # On Redis, a receive cancelled mid-read can swallow a message meant for
        # another channel of this process (a socket's done event): so ask the
        # listener to return instead, and cancel only if it doesn't.
        await layer.send(channel, {"type": "turn.end"})
        try:
            await asyncio.wait_for(listener, timeout=5)
        except TimeoutError:
            log.warning("turn listener did not end", extra={"reply": str(self.turn.reply_id)})

    async def _stream_and_save(self) -> None:
        self._stream_task = asyncio.create_task(self._stream())
        try:
            await asyncio.shield(self._stream_task)
        except asyncio.CancelledError:
            # The worker is shutting down; once restarted it marks the reply interrupted.
            self._stream_task.cancel()
            raise
        except upstream.UpstreamError as error:
            log.warning(
                "upstream failed",
                extra={"reply": str(self.turn.reply_id), "code": error.code, "tokens": self.seq},
            )
            await self._finish_with_error(error.code, error.user_message, error.retryable)
            return
        except Exception:
            log.exception("turn failed", extra={"reply": str(self.turn.reply_id)})
            await self._finish_with_error(
                "internal", "Something went wrong on our side. The text so far is kept.", True
            )
            return
        await self._finish()

    async def _stream(self) -> None:
        try:
            async for event in event_source(self.turn.request):
                self._take(event)
        except asyncio.CancelledError:
            if not self.stop_requested:
                raise

    def stop(self) -> None:
        if self._stream_task is not None and not self._stream_task.done():
            self.stop_requested = True
            self._stream_task.cancel()

    def _take(self, event: upstream.Event) -> None:
        match event:
            case upstream.ContentDelta(text):
                self.content.append(text)
                self._pending_content.append(text)
                self._delta_arrived()
            case upstream.ReasoningDelta(text):
                self.reasoning.append(text)
                self._pending_reasoning.append(text)
                self._delta_arrived()
            case upstream.Finish(reason):
                self.finish_reason = reason
            case upstream.Usage():
                self.usage = event

    def _delta_arrived(self) -> None:
        if self.first_token_at is None:
            # The first token is never held back.
            self.first_token_at = time.monotonic()
            self._flush()
        elif self._flush_handle is None:
            loop = asyncio.get_running_loop()
            self._flush_handle = loop.call_later(settings.GLMWEB_COALESCE_SECONDS, self._flush)

    def _flush(self) -> None:
        self._flush_handle = None
        if not (self._pending_content or self._pending_reasoning):
            return
        event = self._event_head("delta")
        if self._pending_reasoning:
            event["reasoning"] = "".join(self._pending_reasoning)
            self._pending_reasoning.clear()
        if self._pending_content:
            event["content"] = "".join(self._pending_content)
            self._pending_content.clear()
        self._send_soon(event)

    def _send_soon(self, event: dict[str, Any], channel: str | None = None) -> None:
        # Everything leaves in order through one sender task: a snapshot can't
        # overtake the deltas it includes, and a slow channel layer never blocks
        # reading from the upstream.
        self._outbox.append((channel, event))
        if self._sender is None or self._sender.done():
            self._sender = asyncio.create_task(self._drain_outbox())

    async def _drain_outbox(self) -> None:
        layer = get_channel_layer()
        group = conversation_group(self.turn.conversation_id)
        while self._outbox:
            channel, event = self._outbox.pop(0)
            message = {"type": "chat.event", "event": event}
            if channel is None:
                await layer.group_send(group, message)
            else:
                await layer.send(channel, message)

    async def _send_last(self, kind: str, fields: dict[str, Any]) -> None:
        """Flush what is pending, then send the turn's final event and wait for it to leave."""
        if self._flush_handle is not None:
            self._flush_handle.cancel()
        self._flush()
        self._send_soon({**self._event_head(kind), **fields})
        if self._sender is not None:
            await self._sender

    async def _listen(self, layer: Any, channel: str) -> None:
        while True:
            message = await layer.receive(channel)
            if message.get("type") == "turn.end":
                return
            if message.get("type") == "turn.stop":
                self.stop()
            elif message.get("type") == "turn.snapshot":
                self._send_soon(self.snapshot(), channel=message["reply_to"])

    def snapshot(self) -> dict[str, Any]:
        # Text not yet flushed is left out: it arrives in the next delta, whose
        # seq is above this snapshot's.
        return {
            **self._event_head("snapshot", advance=False),
            "content": _joined_without(self.content, self._pending_content),
            "reasoning": _joined_without(self.reasoning, self._pending_reasoning),
            "model": self.turn.model,
            "parent": str(self.turn.parent_id),
            "status": Message.Status.STREAMING,
        }

    async def _checkpoint_periodically(self) -> None:
        saved = (0, 0)
        last_write = time.monotonic()
        while True:
            await asyncio.sleep(settings.GLMWEB_CHECKPOINT_SECONDS)
            lengths = (len(self.content), len(self.reasoning))
            # Write when text arrived, and now and then anyway: a reply that
            # stops checkpointing is taken for dead by the stale sweep.
            heartbeat_due = time.monotonic() - last_write > settings.GLMWEB_STALE_STREAM_SECONDS / 3
            if lengths != saved or heartbeat_due:
                saved, last_write = lengths, time.monotonic()
                await save_checkpoint(
                    self.turn.reply_id, "".join(self.content), "".join(self.reasoning)
                )

    async def _finish(self) -> None:
        status = Message.Status.STOPPED if self.stop_requested else Message.Status.COMPLETE
        outcome = self._outcome(status)
        await save_reply(self.turn.reply_id, outcome)
        await self._send_last(
            "done",
            {
                "status": status,
                "finish_reason": outcome.finish_reason,
                "usage": outcome.usage_dict(),
                "ttft_ms": outcome.ttft_ms,
                "duration_ms": outcome.duration_ms,
            },
        )

    async def _finish_with_error(self, code: str, message: str, retryable: bool) -> None:
        status = Message.Status.INTERRUPTED if self.content else Message.Status.ERROR
        outcome = self._outcome(status, error_code=code, error_message=message)
        await save_reply(self.turn.reply_id, outcome)
        await self._send_last(
            "error",
            {
                "code": code,
                "message": message,
                "status": status,
                "retryable": retryable or status == Message.Status.INTERRUPTED,
            },
        )

    def _event_head(self, kind: str, *, advance: bool = True) -> dict[str, Any]:
        if advance:
            self.seq += 1
        return {
            "type": kind,
            "conversation": str(self.turn.conversation_id),
            "reply": str(self.turn.reply_id),
            "seq": self.seq,
        }

    def _outcome(self, status: str, error_code: str = "", error_message: str = "") -> ReplyOutcome:
        content = "".join(self.content)
        reasoning = "".join(self.reasoning)
        usage, estimated = self.usage, False
        if usage is None:
            usage, estimated = estimate_usage(self.turn.request, content, reasoning), True
        return ReplyOutcome(
            content=content,
            reasoning=reasoning,
            status=status,
            finish_reason=self.finish_reason if status == Message.Status.COMPLETE else "",
            error_code=error_code,
            error_message=error_message,
            usage=usage,
            usage_estimated=estimated,
            ttft_ms=None
            if self.first_token_at is None
            else round((self.first_token_at - self.started) * 1000),
            duration_ms=round((time.monotonic() - self.started) * 1000),
        )


def _joined_without(parts: list[str], pending: list[str]) -> str:
    text = "".join(parts)
    held_back = sum(map(len, pending))
    return text[: len(text) - held_back]


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


def estimate_usage(request: upstream.ChatRequest, content: str, reasoning: str) -> upstream.Usage:
    """About four characters a token: only for replies the upstream never counted."""
    prompt = sum(len(m["content"]) for m in request.messages) // 4 + 4 * len(request.messages)
    completion = (len(content) + len(reasoning) + 3) // 4
    return upstream.Usage(prompt, completion, prompt + completion)


@database_sync_to_async
def save_checkpoint(reply_id: uuid.UUID, content: str, reasoning: str) -> None:
    Message.objects.filter(id=reply_id, status=Message.Status.STREAMING).update(
        content=content, reasoning=reasoning, updated_at=timezone.now()
    )


@database_sync_to_async
def save_reply(reply_id: uuid.UUID, outcome: ReplyOutcome) -> None:
    # The reply and its line in the usage ledger (chat.usage) are saved together.
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
            usage.record_reply(reply_id)


def is_running_here(conversation_id: uuid.UUID) -> bool:
    return conversation_id in RUNNING


def stop_message() -> dict[str, str]:
    return {"type": "turn.stop"}


def snapshot_request(reply_to: str) -> dict[str, str]:
    return {"type": "turn.snapshot", "reply_to": reply_to}
