"""The chat socket: authenticate, check a frame, hand it to the turn, forward events.

The protocol is docs/protocol.md. Turns run apart from the socket (see
chat.generation), so this consumer only joins conversation groups and passes
their numbered events on, dropping any it has already passed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from channels.consumer import get_handler_name
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from chat import generation, liveness, logins, relay, socket_counts
from chat.db import database_call
from chat.generation import TurnRefused
from chat.text import UNSTORABLE_MESSAGE, is_storable
from chat.transcript import owns_conversation, reply_state

log = logging.getLogger(__name__)

CLOSE_NOT_AUTHENTICATED = 4401
CLOSE_TOO_MANY_SOCKETS = 4429
CLOSE_TOO_LARGE = 1009  # RFC 6455's "message too big", as daphne's own limit closes
SNAPSHOT_WAIT_SECONDS = 3.0
# A frame needs four levels (frame, settings, params, stop) and a few dozen values.
MAX_FRAME_DEPTH = 4
MAX_FRAME_VALUES = 200


class FrameError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class ChatConsumer(AsyncWebsocketConsumer):
    user_id: int | None = None

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated or not user.is_active:
            log.info("socket refused: not logged in")
            await self.close(code=CLOSE_NOT_AUTHENTICATED)
            return
        if not await socket_counts.take_place(user.id, self.channel_name):
            log.warning("too many sockets", extra={"user": user.id})
            await self.accept()
            await self.send_error("too_many_sockets", "You have too many chat tabs open.")
            await self.close(code=CLOSE_TOO_MANY_SOCKETS)
            return
        self.user_id = user.id
        self.joined: set[str] = set()
        self.seen_seq: dict[str, int] = {}
        self.awaiting_snapshot: dict[str, asyncio.Task[None]] = {}
        # Conversations whose turn on another worker sends this socket its events.
        self.following: set[str] = set()
        self.outbox: asyncio.Queue[tuple[dict[str, Any], str | None]] = asyncio.Queue()
        self.writer: asyncio.Task[None] | None = None
        self.writing = asyncio.Lock()
        if not generation.recovered():
            await database_call(generation.recover_once)()
        await self.accept()

    async def disconnect(self, code: int) -> None:
        if self.user_id is None:
            return
        await socket_counts.give_place(self.user_id, self.channel_name)
        for conversation in list(self.joined):
            await self.leave_group(conversation)
        if self.writer is not None:
            self.writer.cancel()
        self.user_id = None

    async def dispatch(self, message: dict[str, Any]) -> None:
        # channels' own dispatch first closes stale database connections, a trip
        # to the database thread for every frame and layer message, queued
        # behind the turn starts. This consumer touches the database only
        # through database_call, which closes them around each call.
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

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
            frame = self.parse_frame(text_data, bytes_data)
            if not await logins.still_valid(self.scope.get("session"), self.user_id):
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

    def parse_frame(self, text_data: str | None, bytes_data: bytes | None) -> dict[str, Any]:
        if text_data is None:
            raise FrameError("bad_frame", "Frames must be JSON text, not binary.")
        try:
            frame = json.loads(text_data, parse_constant=refuse_constant)
        except RecursionError:
            raise FrameError("bad_frame", "Frames can't be nested that deeply.") from None
        except ValueError:
            raise FrameError("bad_frame", "Frames must be JSON.") from None
        if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
            raise FrameError("bad_frame", "A frame must be a JSON object with a type.")
        check_values(frame)
        return frame

    async def frame_send(self, frame: dict[str, Any]) -> None:
        conversation = optional_id(frame.get("conversation"))
        client_id = checked_client_id(frame)
        content = checked_content(frame)
        await self.start_turn(
            generation.start_send,
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
            database_call(generation.begin_regenerate),
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
            database_call(generation.begin_edit),
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
            database_call(generation.begin_continue),
            conversation,
            reply,
            conversation=conversation,
        )

    async def start_turn(
        self,
        begin: Callable[..., Awaitable[generation.Turn]],
        *args: Any,
        conversation: str | None,
        client_id: str | None = None,
    ) -> None:
        """Run one of generation's begin_* functions for this user, then start the turn."""
        try:
            turn = await begin(self.user_id, *args)
        except TurnRefused as refused:
            extra = {"client_id": client_id} if client_id is not None else {}
            if refused.fields:
                extra["fields"] = refused.fields
            await self.send_error(refused.code, refused.message, conversation=conversation, **extra)
            return
        await self.begin(turn)

    async def frame_switch(self, frame: dict[str, Any]) -> None:
        conversation = required_id(frame.get("conversation"))
        leaf = required_id(frame.get("leaf"), "leaf")
        try:
            shown = await database_call(generation.switch_branch)(self.user_id, conversation, leaf)
        except TurnRefused as refused:
            await self.send_error(refused.code, refused.message, conversation=conversation)
            return
        await self.send_event({"type": "switched", "conversation": conversation, "leaf": shown})

    async def begin(self, turn: generation.Turn) -> None:
        conversation = str(turn.conversation_id)
        # Joined here before the turn starts, this socket gets its start event.
        # The layer's group (events from other workers) is a round trip to Redis:
        # the turn's upstream request goes out meanwhile, not after it.
        newly_joined = self.join_here(conversation)
        if turn.is_new:
            await generation.start(turn)
        else:
            await self.send_event(turn.start_event())
        if newly_joined:
            await self.join_layer_group(conversation)

    async def frame_stop(self, frame: dict[str, Any]) -> None:
        conversation = required_id(frame.get("conversation"))
        await self.require_owned(conversation)
        await generation.request_stop(self.channel_layer, conversation)

    async def frame_join(self, frame: dict[str, Any]) -> None:
        conversation = required_id(frame.get("conversation"))
        await self.require_owned(conversation)
        # Join first, then look: whatever happens after the look arrives as events.
        await self.join_group(conversation)
        state = await database_call(reply_state)(conversation)
        generating = state is not None and state["status"] == "streaming"
        await self.send_event(
            {"type": "joined", "conversation": conversation, "generating": generating}
        )
        if generating:
            await self.request_snapshot(conversation)

    async def frame_leave(self, frame: dict[str, Any]) -> None:
        await self.leave_group(required_id(frame.get("conversation")))

    async def require_owned(self, conversation: str) -> None:
        if not await database_call(owns_conversation)(self.user_id, conversation):
            raise FrameError("not_found", "That conversation doesn't exist.")

    # --- Events out ------------------------------------------------------------

    def deliver(self, event: dict[str, Any], text: str | None) -> None:
        # From a turn in this process (chat.relay) or, with text None, from the
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
        """A generated title (chat.titles): not part of a turn, so no seq."""
        # A socket closing may still get a message queued before it left the group.
        if self.user_id is not None and message["event"]["conversation"] in self.joined:
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
        runner = generation.running_here(conversation)
        if runner is not None:
            snapshot = runner.snapshot()
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
            generation.control_group(conversation),
            generation.snapshot_request(conversation, self.channel_name),
        )

    def turn_interrupted(self, state: dict[str, Any]) -> None:
        """The worker streaming a turn this socket follows died (chat.liveness).

        The turn ends with the text of its last checkpoint, as a reload shows
        it: a snapshot of that text, then the turn's ``interrupted`` error.
        """
        conversation, reply = state["conversation"], state["reply"]
        seq = self.seen_seq.get(reply, 0)
        text = {"content": state["content"], "reasoning": state["reasoning"]}
        snapshot = {"type": "snapshot", "conversation": conversation, "seq": seq}
        fields = ("reply", "content", "reasoning", "status", "model", "parent")
        self.deliver({**snapshot, **{field: state[field] for field in fields}}, None)
        error = {
            "type": "error",
            "conversation": conversation,
            "reply": reply,
            "seq": seq + 1,
            "code": "interrupted",
            "message": state["error_message"],
            "status": "interrupted",
            "retryable": True,
        }
        self.deliver({**error, **text}, None)

    async def snapshot_from_database_later(self, conversation: str) -> None:
        # No live turn answered (its worker died): show what was saved.
        await asyncio.sleep(SNAPSHOT_WAIT_SECONDS)
        self.awaiting_snapshot.pop(conversation, None)
        await self.send_database_snapshot(conversation)

    async def send_database_snapshot(
        self, conversation: str, before_seq: int | None = None
    ) -> None:
        state = await database_call(reply_state)(conversation)
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
            generation.conversation_group(conversation), self.channel_name
        )

    async def leave_group(self, conversation: str) -> None:
        self.cancel_snapshot_wait(conversation)
        if conversation in self.joined:
            self.joined.discard(conversation)
            relay.leave(conversation, self)
            await self.channel_layer.group_discard(
                generation.conversation_group(conversation), self.channel_name
            )
        if conversation in self.following:
            self.following.discard(conversation)
            await self.channel_layer.group_send(
                generation.control_group(conversation),
                generation.unfollow_message(conversation, self.channel_name),
            )

    async def send_event(self, event: dict[str, Any]) -> None:
        await self.send(text_data=json.dumps(event, ensure_ascii=False))

    async def send_error(self, code: str, message: str, **fields: Any) -> None:
        await self.send_event({"type": "error", "code": code, "message": message, **fields})


def too_large(text_data: str | None, bytes_data: bytes | None) -> bool:
    """Over GLMWEB_MAX_FRAME_BYTES in UTF-8, as daphne counts a frame."""
    limit = settings.GLMWEB_MAX_FRAME_BYTES
    if bytes_data is not None:
        return len(bytes_data) > limit
    if text_data is None or len(text_data) * 4 <= limit:
        return False
    return len(text_data) > limit or len(text_data.encode("utf-8", "surrogatepass")) > limit


def refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not a number")


def check_values(frame: dict[str, Any]) -> None:
    """Refuse nesting and sizes no frame needs, and text the databases can't store alike."""
    pending: list[tuple[object, int]] = [(frame, 1)]
    seen = 0
    while pending:
        value, depth = pending.pop()
        seen += 1
        if seen > MAX_FRAME_VALUES:
            raise FrameError("bad_frame", "A frame can't hold that many values.")
        if isinstance(value, str):
            if not is_storable(value):
                raise FrameError("bad_frame", UNSTORABLE_MESSAGE)
        elif isinstance(value, dict | list):
            if depth > MAX_FRAME_DEPTH:
                raise FrameError("bad_frame", "Frames can't be nested that deeply.")
            items = value.values() if isinstance(value, dict) else value
            pending.extend((item, depth + 1) for item in items)
            if isinstance(value, dict):
                pending.extend((key, depth + 1) for key in value)


def optional_id(value: object, name: str = "conversation") -> str | None:
    return None if value is None else required_id(value, name)


def required_id(value: object, name: str = "conversation") -> str:
    """An id field, parsed as a UUID here and only here: its canonical text, or bad_frame."""
    if isinstance(value, str) and len(value) <= 64:
        try:
            return str(uuid.UUID(value))
        except ValueError:
            pass
    raise FrameError("bad_frame", f"{name} must be a {name} id.")


def checked_client_id(frame: dict[str, Any]) -> str:
    client_id = frame.get("client_id")
    if not isinstance(client_id, str) or not 1 <= len(client_id) <= 64:
        raise FrameError("bad_frame", "client_id must be a string of 1 to 64 characters.")
    return client_id


def checked_content(frame: dict[str, Any]) -> str:
    content = frame.get("content")
    if not isinstance(content, str):
        raise FrameError("bad_frame", "content must be a string.")
    if not content.strip():
        raise FrameError("empty_message", "Type a message first.")
    if len(content) > settings.GLMWEB_MAX_MESSAGE_CHARS:
        raise FrameError(
            "too_large",
            f"Messages can be at most {settings.GLMWEB_MAX_MESSAGE_CHARS:,} characters; "
            f"this one has {len(content):,}.",
        )
    return content
