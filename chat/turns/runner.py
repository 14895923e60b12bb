"""Running a turn: stream the reply in its own task, publish its events, save it.

A turn runs apart from the socket that asked for it: closing the tab doesn't
stop it, only Stop (from any socket, on any worker), a limit or the worker's
shutdown does. Its numbered events (``start``, ``delta``, ``done``/``error``)
go to this process's sockets directly (chat.turns.relay) and to other
workers' through the channel layer (chat.turns.control). The database sees a
checkpoint of the text at most every few seconds and the final reply
(chat.turns.saving): never a write per token, never a synchronous query in the
event loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, field
from typing import Any

from channels.layers import get_channel_layer
from django.conf import settings

from chat import upstream
from chat.models import INTERRUPTED_MESSAGE, Message
from chat.turns import control, relay, saving, titles
from chat.turns.config import upstream_config
from chat.turns.context import estimate_usage
from chat.turns.saving import Checkpoint, ReplyOutcome
from chat.turns.starting import Turn
from chat.upstream import demo

log = logging.getLogger(__name__)

# Turns running in this process, by conversation id. Holding the task here keeps
# it alive after the socket that started it goes away.
RUNNING: dict[uuid.UUID, TurnRunner] = {}


async def start(turn: Turn) -> None:
    """Run the turn in the background; its events go to the conversation's sockets."""
    if not turn.is_new:
        return
    runner = TurnRunner(turn)
    RUNNING[turn.conversation_id] = runner
    runner.task = asyncio.create_task(runner.run(), name=f"turn-{turn.reply_id}")


def running_here(conversation: str) -> TurnRunner | None:
    """The turn generating in this conversation in this process, until its last event."""
    try:
        runner = RUNNING.get(uuid.UUID(conversation))
    except ValueError:
        return None
    return None if runner is None or runner.finished else runner


async def request_stop(layer: Any, conversation: str) -> None:
    runner = running_here(conversation)
    if runner is not None:
        runner.stop()
    else:  # it may run on another worker
        await layer.group_send(
            control.control_group(conversation), control.stop_message(conversation)
        )


async def interrupt_running_turns(timeout: float = 10) -> None:
    """At shutdown: every running turn saves its text so far, as interrupted.

    Without this a restart would lose what came since the last checkpoint.
    """
    runners = list(RUNNING.values())
    for runner in runners:
        runner.interrupt()
    tasks = [runner.task for runner in runners if runner.task is not None]
    if tasks:
        log.info("interrupting running turns for shutdown", extra={"turns": len(tasks)})
        await asyncio.wait(tasks, timeout=timeout)


def event_batches(request: upstream.ChatRequest) -> AsyncIterator[list[upstream.Event]]:
    if settings.GLMWEB_DEMO_MODEL:
        return demo.stream_demo(request)
    return upstream.stream_chat_batches(request, upstream_config())


def _control(message: dict[str, Any]) -> None:
    """A request heard on this process's control channel, for the turn it names."""
    runner = running_here(str(message.get("conversation", "")))
    if runner is not None:
        runner.control(message)


async def _layer_call(call: Awaitable[None]) -> None:
    try:
        await call
    except Exception:
        log.warning("channel layer call for a turn failed", exc_info=True)


_checkpointer: saving.Checkpointer | None = None


def _keep_checkpointing() -> saving.Checkpointer:
    global _checkpointer
    loop = asyncio.get_running_loop()
    current = _checkpointer
    if current is None or current.task.done() or current.task.get_loop() is not loop:
        current = _checkpointer = saving.Checkpointer(RUNNING.values)
    return current


@dataclass
class TurnRunner:
    """One turn streaming in this process: its text so far, its last seq, who follows it."""

    turn: Turn
    task: asyncio.Task[None] | None = None
    content: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    seq: int = 0
    finish_reason: str = ""
    usage: upstream.Usage | None = None
    stop_requested: bool = False
    shutting_down: bool = False
    started: float = field(default_factory=time.monotonic)
    first_token_at: float | None = None
    _pending_content: list[str] = field(default_factory=list)
    _pending_reasoning: list[str] = field(default_factory=list)
    # The next delta may leave at once from this loop time; a timer sends it otherwise.
    _next_frame_at: float = 0.0
    _frame_timer: asyncio.Handle | None = None
    _ids: dict[str, str] = field(init=False)
    # Sockets on other workers that asked for this turn's events (their layer channels).
    followers: set[str] = field(default_factory=set)
    finished: bool = False
    _layer_outbox: asyncio.Queue[tuple[str | None, dict[str, Any]] | None] | None = None
    _sender: asyncio.Task[None] | None = None
    _stream_task: asyncio.Task[None] | None = None
    # The text's lengths (in parts) at the last checkpoint; None before the first with text.
    _checkpointed: tuple[int, int] | None = None
    _last_checkpoint: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        # Every event names its turn; the ids as text, once.
        self._ids = {
            "conversation": str(self.turn.conversation_id),
            "reply": str(self.turn.reply_id),
        }
        # A continued reply starts from its saved text; deltas carry only new text.
        if self.turn.prefix_content:
            self.content.append(self.turn.prefix_content)
        if self.turn.prefix_reasoning:
            self.reasoning.append(self.turn.prefix_reasoning)

    async def run(self) -> None:
        layer = get_channel_layer()
        if relay.reaches_other_processes(layer):
            # Sockets on other workers hear this turn through the layer and send
            # it stop and snapshot requests there; this process's sockets need
            # neither (chat.turns.relay), and the upstream request doesn't wait for it.
            self._layer_outbox = asyncio.Queue()
            self._sender = asyncio.create_task(self._send_to_layer(layer))
        _keep_checkpointing()
        try:
            self._publish(self.turn.start_event())
            await self._stream_and_save()
        finally:
            if self._sender is not None and not self._sender.done():
                self._sender.cancel()  # only when cancelled: _send_last lets it finish
            RUNNING.pop(self.turn.conversation_id, None)

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
        if self.shutting_down:
            await self._finish_with_error("interrupted", INTERRUPTED_MESSAGE, True)
            return
        await self._finish()

    async def _stream(self) -> None:
        try:
            async for batch in event_batches(self.turn.request):
                for event in batch:
                    self._take(event)
                self._flush_soon()
        except asyncio.CancelledError:
            if not self.stop_requested:
                raise

    def stop(self) -> None:
        if self._stream_task is not None and not self._stream_task.done():
            self.stop_requested = True
            self._stream_task.cancel()

    def interrupt(self) -> None:
        """The worker is shutting down: stop reading, save the text as interrupted."""
        if self._stream_task is not None and not self._stream_task.done():
            self.shutting_down = True
            self.stop()

    def _take(self, event: upstream.Event) -> None:
        match event:
            case upstream.ContentDelta(text):
                self.content.append(text)
                self._pending_content.append(text)
            case upstream.ReasoningDelta(text):
                self.reasoning.append(text)
                self._pending_reasoning.append(text)
            case upstream.Finish(reason):
                self.finish_reason = reason
            case upstream.Usage():
                self.usage = event

    def _flush_soon(self) -> None:
        """One delta per GLMWEB_COALESCE_SECONDS: what arrives within it leaves together.

        The first delta never waits, nor one after a quiet spell: only the text that
        follows a frame closely is held, at most the window. Fewer frames is less
        work on every socket and in the layer.
        """
        if self._frame_timer is not None:
            return  # this window's frame is already due
        loop = asyncio.get_running_loop()
        if loop.time() >= self._next_frame_at:
            # Soon, not now: the chunks of one network read come as batches one after
            # another in this loop turn, and leave together.
            self._frame_timer = loop.call_soon(self._send_frame)
        else:
            self._frame_timer = loop.call_at(self._next_frame_at, self._send_frame)

    def _send_frame(self) -> None:
        self._frame_timer = None
        self._flush()
        self._next_frame_at = asyncio.get_running_loop().time() + settings.GLMWEB_COALESCE_SECONDS

    def _flush(self) -> None:
        if self._frame_timer is not None:
            self._frame_timer.cancel()
            self._frame_timer = None
        if not (self._pending_content or self._pending_reasoning):
            return
        if self.first_token_at is None:
            self.first_token_at = time.monotonic()
            # A worker killed a few seconds in keeps the start of the reply.
            _keep_checkpointing().no_later_than(
                self.first_token_at + saving.first_checkpoint_seconds()
            )
        event = self._event_head("delta")
        if self._pending_reasoning:
            event["reasoning"] = "".join(self._pending_reasoning)
            self._pending_reasoning.clear()
        if self._pending_content:
            event["content"] = "".join(self._pending_content)
            self._pending_content.clear()
        self._publish(event)

    def _publish(self, event: dict[str, Any], to: str | None = None) -> None:
        """This process's sockets get the event at once; other workers' through the layer."""
        if to is None:
            relay.publish(self._ids["conversation"], event)
        if self._layer_outbox is not None and (
            to is not None or self.followers or event["type"] in control.ANNOUNCED_EVENTS
        ):
            self._layer_outbox.put_nowait((to, event))

    async def _send_to_layer(self, layer: Any) -> None:
        # One sender for the whole turn keeps the layer's messages in order: a
        # snapshot can't overtake the deltas it includes, and a slow layer never
        # blocks reading from the upstream.
        assert self._layer_outbox is not None
        # Listen for requests before announcing the turn: a socket elsewhere
        # asks only once it has heard of it.
        await _layer_call(self._listen_for_requests(layer))
        group = control.conversation_group(self.turn.conversation_id)
        while (item := await self._layer_outbox.get()) is not None:
            to, event = item
            message = {"type": "chat.event", "event": event, "origin": relay.PROCESS}
            if to is not None:
                channels = [to]
            elif event["type"] in control.ANNOUNCED_EVENTS:
                channels = []
                await _layer_call(layer.group_send(group, message))
            else:
                channels = list(self.followers)
            for channel in channels:
                # A message the layer refuses shows as a gap in seq; the socket
                # then asks for a new snapshot.
                await _layer_call(layer.send(channel, message))
        await _layer_call(self._stop_listening(layer))

    async def _listen_for_requests(self, layer: Any) -> None:
        channel = await control.control_channel(layer, _control)
        await layer.group_add(control.control_group(self.turn.conversation_id), channel)

    async def _stop_listening(self, layer: Any) -> None:
        # Unless the conversation's next turn, here too, already listens: the
        # group is the conversation's, the channel this process's.
        if RUNNING.get(self.turn.conversation_id) in (None, self):
            channel = await control.control_channel(layer, _control)
            await layer.group_discard(control.control_group(self.turn.conversation_id), channel)

    async def _send_last(self, kind: str, fields: dict[str, Any]) -> None:
        """Flush what is pending, then send the turn's final event and wait for it to leave."""
        self._flush()
        self.finished = True
        self._publish({**self._event_head(kind), **fields})
        if self._layer_outbox is not None and self._sender is not None:
            self._layer_outbox.put_nowait(None)
            await self._sender

    def control(self, message: dict[str, Any]) -> None:
        """A stop or snapshot request from a socket on another worker."""
        kind = message.get("type")
        if kind == "turn.stop":
            self.stop()
        elif kind == "turn.snapshot" and not self.finished:
            # From now on that socket follows this turn.
            self.followers.add(message["reply_to"])
            self._publish(self.snapshot(), to=message["reply_to"])
        elif kind == "turn.unfollow":
            self.followers.discard(message["reply_to"])

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

    def checkpoint_due(self, now: float) -> Checkpoint | None:
        """The text to checkpoint at this tick, if it's time: see saving.Checkpointer."""
        if self.finished:
            return None
        lengths = (len(self.content), len(self.reasoning))
        if self._checkpointed is None:
            first_at = self.first_checkpoint_at()
            due = first_at is not None and now >= first_at
        else:
            due = (
                lengths != self._checkpointed
                and now - self._last_checkpoint >= settings.GLMWEB_CHECKPOINT_SECONDS
            )
        # And now and then anyway: a reply that stops checkpointing is taken
        # for dead by the stale sweep.
        keepalive_due = now - self._last_checkpoint > settings.GLMWEB_STALE_STREAM_SECONDS / 3
        if not (due or keepalive_due):
            return None
        # Before the first token (a keep-alive) the first checkpoint is still to come.
        self._checkpointed = None if self.first_token_at is None else lengths
        self._last_checkpoint = now
        return self.turn.reply_id, "".join(self.content), "".join(self.reasoning)

    def first_checkpoint_at(self) -> float | None:
        """When the first checkpoint is due: soon after the first token (none before)."""
        if self.finished or self._checkpointed is not None or self.first_token_at is None:
            return None
        return self.first_token_at + saving.first_checkpoint_seconds()

    async def _finish(self) -> None:
        status = Message.Status.STOPPED if self.stop_requested else Message.Status.COMPLETE
        outcome = self._outcome(status)
        await saving.save_reply(self.turn.reply_id, outcome, self.turn.prior_usage)
        titles.start(self.turn.conversation_id, self.turn.reply_id)
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
        await saving.save_reply(self.turn.reply_id, outcome, self.turn.prior_usage)
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
            **self._ids,
            "seq": self.seq,
        }

    def _outcome(self, status: str, error_code: str = "", error_message: str = "") -> ReplyOutcome:
        content = "".join(self.content)
        reasoning = "".join(self.reasoning)
        usage, estimated = self.usage, False
        if usage is None:
            new_content = content[len(self.turn.prefix_content) :]
            new_reasoning = reasoning[len(self.turn.prefix_reasoning) :]
            usage = estimate_usage(self.turn.request, new_content, new_reasoning)
            estimated = True
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
