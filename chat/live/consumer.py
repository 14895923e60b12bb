"""The chat socket: check a frame, hand it to the turn, forward the turn's events.

The protocol is docs/protocol.md. The user comes from channels'
AuthMiddlewareStack (glmweb/asgi.py); chat.live.sessions rechecks it on the
frames. Turns run apart from the socket (see chat.turns.runner), so this
consumer only joins conversation groups and passes their numbered events on,
dropping any it has already passed. The tasks it starts (its writer, its
snapshot waits) end with it.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from chat.live import liveness, socket_counts
from chat.live.frames import (
    FrameError,
    checked_client_id,
    checked_content,
    optional_id,
    parse_frame,
    required_id,
    too_large,
)
from chat.live.sessions import LoginCheck
from chat.models import Conversation
from chat.turns import control, recovery, relay, runner, starting
from chat.turns.refusals import TurnRefused

log = logging.getLogger(__name__)

CLOSE_NOT_AUTHENTICATED = 4401
CLOSE_TOO_MANY_SOCKETS = 4429
CLOSE_TOO_LARGE = 1009  # RFC 6455's "message too big", as daphne's own limit closes
SNAPSHOT_WAIT_SECONDS = 3.0
saved_reply_state = database_sync_to_async(liveness.saved_reply_state)


class ChatConsumer(AsyncWebsocketConsumer):
    user_id: int
    # Set up and counted in socket_counts, until it disconnects.
    connected = False

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated or not user.is_active:
            log.info("socket refused: not logged in")
            await self.close(code=CLOSE_NOT_AUTHENTICATED)
            return
        self.user_id = user.id
        if not await socket_counts.take_place(user.id, self.channel_name):
            log.warning("too many sockets", extra={"user": user.id})
            await self.accept()
            await self.send_error("too_many_sockets", "You have too many chat tabs open.")
            await self.close(code=CLOSE_TOO_MANY_SOCKETS)
            return
        self.connected = True
        self.login = LoginCheck(self.scope["session"].session_key, user.id)
        self.joined: set[str] = set()
        self.seen_seq: dict[str, int] = {}
        self.awaiting_snapshot: dict[str, asyncio.Task[None]] = {}
        # Conversations whose turn on another worker sends this socket its events.
        self.following: set[str] = set()
        self.outbox: asyncio.Queue[tuple[dict[str, Any], str | None]] = asyncio.Queue()
        self.writer: asyncio.Task[None] | None = None
        self.writing = asyncio.Lock()
        if not recovery.recovered():
            await database_sync_to_async(recovery.recover_once)()
        await self.accept()

    async def disconnect(self, code: int) -> None:
        if not self.connected:
            return
        self.connected = False
        await socket_counts.give_place(self.user_id, self.channel_name)
        for conversation in list(self.joined):
            await self.leave_group(conversation)
        for waiting in list(self.awaiting_snapshot.values()):
            waiting.cancel()
        if self.writer is not None:
            self.writer.cancel()

    # --- Frames in -------------------------------------------------------------

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if too_large(text_data, bytes_data):
            # As glmweb.serve's daphne closes for a frame over the same limit;
            # this is for a server that lets a bigger one through.
            log.info("frame too large", extra={"user": self.user_id})
            limit = settings.GLMWEB_MAX_FRAME_BYTES
            await self.close(code=CLOSE_TOO_LARGE, reason=f"frame over the limit of {limit} bytes")
            return
        try:
            frame = parse_frame(text_data)
            if not await self.login.still_valid():
                log.info("socket closed: session ended", extra={"user": self.user_id})
                await self.send_error("not_authenticated", "You have been logged out.")
                await self.close(code=CLOSE_NOT_AUTHENTICATED)
                return
            handler = getattr(self, f"frame_{frame['type']}", None)
            if handler is None:
                raise FrameError("bad_frame", f"Unknown frame type {frame['type'][:40]!r}.")
            # Turn events wait while a frame is handled: a join's answer comes
            # before the events that follow it.
            async with self.writing:
                await handler(frame)
        except FrameError as error:
            log.info("frame refused", extra={"user": self.user_id, "code": error.code})
            await self.send_error(error.code, error.message)
        except Exception:
            # A bug: the person hears of it and the socket stays up.
            log.exception("frame failed", extra={"user": self.user_id})
            await self.send_error(
                "server_error", "Something went wrong on our side. It has been logged."
            )

    async def frame_send(self, frame: dict[str, Any]) -> None:
        conversation = optional_id(frame.get("conversation"))
        client_id = checked_client_id(frame)
        content = checked_content(frame)
        await self.start_turn(
            starting.start_send,
            conversation,
            content,
            client_id,
            frame.get("params"),
            frame.get("settings"),
            conversation=conversation,
            client_id=client_id,
        )

    async def frame_regenerate(self, frame: dict[str, Any]) -> None:
        conversation = required_id(frame.get("conversation"))
        reply = optional_id(frame.get("reply"), "reply")
        await self.start_turn(
            database_sync_to_async(starting.begin_regenerate),
            conversation,
            reply,
            conversation=conversation,
        )

    async def frame_edit(self, frame: dict[str, Any]) -> None:
        conversation = required_id(frame.get("conversation"))
        message = required_id(frame.get("message"), "message")
        client_id = checked_client_id(frame)
        content = checked_content(frame)
        await self.start_turn(
            database_sync_to_async(starting.begin_edit),
            conversation,
            message,
            content,
            client_id,
            conversation=conversation,
            client_id=client_id,
        )

    async def frame_continue(self, frame: dict[str, Any]) -> None:
        conversation = required_id(frame.get("conversation"))
        reply = required_id(frame.get("reply"), "reply")
        await self.start_turn(
            database_sync_to_async(starting.begin_continue),
            conversation,
            reply,
            conversation=conversation,
        )

    async def start_turn(
        self,
        begin: Callable[..., Awaitable[starting.Turn]],
        *args: Any,
        conversation: str | None,
        client_id: str | None = None,
    ) -> None:
        """Run one of starting's begin_* functions for this user, then start the turn."""
        try:
            turn = await begin(self.user_id, *args)
        except TurnRefused as refused:
            extra: dict[str, Any] = {} if client_id is None else {"client_id": client_id}
            if refused.fields:
                extra["fields"] = refused.fields
            await self.send_error(refused.code, refused.message, conversation=conversation, **extra)
            return
        await self.begin(turn)

    async def frame_switch(self, frame: dict[str, Any]) -> None:
        conversation = required_id(frame.get("conversation"))
        leaf = required_id(frame.get("leaf"), "leaf")
        try:
            shown = await database_sync_to_async(starting.switch_branch)(
                self.user_id, conversation, leaf
            )
        except TurnRefused as refused:
            await self.send_error(refused.code, refused.message, conversation=conversation)
            return
        await self.send_event({"type": "switched", "conversation": conversation, "leaf": shown})

    async def begin(self, turn: starting.Turn) -> None:
        conversation = str(turn.conversation_id)
        # Joined here before the turn starts, this socket gets its start event.
        # The layer's group (events from other workers) is a round trip to Redis:
        # the turn's upstream request goes out meanwhile, not after it.
        newly_joined = self.join_here(conversation)
        if turn.is_new:
            await runner.start(turn)
        else:
            await self.send_event(turn.start_event())
        if newly_joined:
            await self.join_layer_group(conversation)

    async def frame_stop(self, frame: dict[str, Any]) -> None:
        conversation = required_id(frame.get("conversation"))
        await self.require_owned(conversation)
        await runner.request_stop(self.channel_layer, conversation)

    async def frame_join(self, frame: dict[str, Any]) -> None:
        conversation = required_id(frame.get("conversation"))
        await self.require_owned(conversation)
        # Join first, then look: whatever happens after the look arrives as events.
        await self.join_group(conversation)
        state = await saved_reply_state(conversation)
        generating = state is not None and state["status"] == "streaming"
        await self.send_event(
            {"type": "joined", "conversation": conversation, "generating": generating}
        )
        if generating:
            await self.request_snapshot(conversation)

    async def frame_leave(self, frame: dict[str, Any]) -> None:
        await self.leave_group(required_id(frame.get("conversation")))

    async def require_owned(self, conversation: str) -> None:
        owned = Conversation.objects.filter(id=conversation, owner_id=self.user_id)
        if not await owned.aexists():
            raise FrameError("not_found", "That conversation doesn't exist.")

    # --- Events out ------------------------------------------------------------

    def deliver(self, event: dict[str, Any], text: str | None) -> None:
        # From a turn in this process (chat.turns.relay) or, with text None, from the
        # layer. One queue keeps them in order, and this socket's own writer
        # task means a slow socket never holds up a turn.
        self.outbox.put_nowait((event, text))
        if self.writer is None:
            self.writer = asyncio.create_task(self.write_events())

    async def chat_event(self, message: dict[str, Any]) -> None:
        """A turn's event through the channel layer: from a turn on another worker."""
        if message.get("origin") != relay.PROCESS:  # this process's came directly
            liveness.heard(message["event"]["conversation"])
            self.deliver(message["event"], None)

    async def chat_title(self, message: dict[str, Any]) -> None:
        """A generated title (chat.turns.titles): not part of a turn, so no seq."""
        # A socket closing may still get a message queued before it left the group.
        if self.connected and message["event"]["conversation"] in self.joined:
            async with self.writing:
                await self.send_event(message["event"])

    async def write_events(self) -> None:
        while True:
            event, text = await self.outbox.get()
            try:
                async with self.writing:
                    await self.forward(event, text)
            except Exception:
                log.exception("event not forwarded", extra={"user": self.user_id})

    async def forward(self, event: dict[str, Any], text: str | None) -> None:
        conversation = event["conversation"]
        if conversation not in self.joined:
            return
        kind, reply, seq = event["type"], event["reply"], event["seq"]
        seen = self.seen_seq.get(reply, -1)
        if kind == "start":
            # A new turn (a continued reply starts again from seq 0).
            self.cancel_snapshot_wait(conversation)
        elif kind == "snapshot":
            self.cancel_snapshot_wait(conversation)
        elif seq <= seen:
            return
        elif kind in ("done", "error"):
            self.following.discard(conversation)
            if conversation in self.awaiting_snapshot or seen < seq - 1:
                # Deltas went missing (the turn ended before it answered our
                # snapshot request, or the layer dropped some): its final text
                # is saved by now.
                self.cancel_snapshot_wait(conversation)
                await self.send_database_snapshot(conversation, before_seq=seq)
        elif conversation in self.awaiting_snapshot:
            return  # the snapshot on its way includes it
        elif seq > seen + 1:
            await self.request_snapshot(conversation)  # it includes the missing text
            return
        self.seen_seq[reply] = seq
        await self.send(text_data=relay.encode(event) if text is None else text)
        if kind == "start" and text is None:
            await self.request_snapshot(conversation)  # follow the turn on the other worker

    async def request_snapshot(self, conversation: str) -> None:
        running = runner.running_here(conversation)
        if running is not None:
            snapshot = running.snapshot()
            # The deltas already queued are in it.
            self.seen_seq[snapshot["reply"]] = snapshot["seq"]
            self.deliver(snapshot, relay.encode(snapshot))
            return
        if conversation in self.awaiting_snapshot:
            return
        # It may run on another worker: ask it, and fall back on the database.
        self.awaiting_snapshot[conversation] = asyncio.create_task(
            self.snapshot_from_database_later(conversation)
        )
        self.following.add(conversation)
        liveness.follow(conversation, self)  # in case its worker dies
        await self.channel_layer.group_send(
            control.control_group(conversation),
            control.snapshot_request(conversation, self.channel_name),
        )

    def turn_interrupted(self, state: dict[str, Any]) -> None:
        """The worker streaming a turn this socket follows died (chat.live.liveness).

        The turn ends with the text of its last checkpoint, as a reload shows
        it: a snapshot of that text, then the turn's ``interrupted`` error.
        """
        seq = self.seen_seq.get(state["reply"], 0)
        for event in liveness.interrupted_turn_events(state, seq):
            self.deliver(event, None)

    async def snapshot_from_database_later(self, conversation: str) -> None:
        # No live turn answered (its worker died): show what was saved.
        await asyncio.sleep(SNAPSHOT_WAIT_SECONDS)
        self.awaiting_snapshot.pop(conversation, None)
        await self.send_database_snapshot(conversation)

    async def send_database_snapshot(
        self, conversation: str, before_seq: int | None = None
    ) -> None:
        state = await saved_reply_state(conversation)
        if state is None:
            return
        seq = self.seen_seq.get(state["reply"], 0) if before_seq is None else before_seq - 1
        self.seen_seq[state["reply"]] = seq
        await self.send_event(
            {"type": "snapshot", "conversation": conversation, "seq": seq, **state}
        )

    def cancel_snapshot_wait(self, conversation: str) -> None:
        waiting = self.awaiting_snapshot.pop(conversation, None)
        if waiting is not None:
            waiting.cancel()

    async def join_group(self, conversation: str) -> None:
        if self.join_here(conversation):
            await self.join_layer_group(conversation)

    def join_here(self, conversation: str) -> bool:
        """Hear the turns of this process in the conversation; False if already joined."""
        if conversation in self.joined:
            return False
        self.joined.add(conversation)
        relay.join(conversation, self)
        return True

    async def join_layer_group(self, conversation: str) -> None:
        await self.channel_layer.group_add(
            control.conversation_group(conversation), self.channel_name
        )

    async def leave_group(self, conversation: str) -> None:
        self.cancel_snapshot_wait(conversation)
        if conversation in self.joined:
            self.joined.discard(conversation)
            relay.leave(conversation, self)
            await self.channel_layer.group_discard(
                control.conversation_group(conversation), self.channel_name
            )
        if conversation in self.following:
            self.following.discard(conversation)
            await self.channel_layer.group_send(
                control.control_group(conversation),
                control.unfollow_message(conversation, self.channel_name),
            )

    async def send_event(self, event: dict[str, Any]) -> None:
        await self.send(text_data=json.dumps(event, ensure_ascii=False))

    async def send_error(self, code: str, message: str, **fields: Any) -> None:
        await self.send_event({"type": "error", "code": code, "message": message, **fields})
