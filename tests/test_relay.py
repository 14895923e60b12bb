"""The relay: a turn's events reach the sockets of its own process directly.

The channel layer here is the configured one (in-memory, or Redis when
hosted), only made to note what passes through it: turn events for sockets in
this process must not. Several workers over Redis are tests/test_workers.py.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.layers import InMemoryChannelLayer, get_channel_layer
from channels_redis.pubsub import RedisPubSubChannelLayer

from bench.fake_upstream import Scenario, content_tokens
from chat.turns.control import control_group
from tests.conftest import (
    QueryCounter,
    hosted,
    open_socket,
    text_of,
    wait_for,
)

pytestmark = pytest.mark.django_db(transaction=True)


def layer_method(parent: Any, name: str) -> Any:
    """`name` of the layer class under a mixin (`parent` is its super()).

    The Redis pub/sub layer has its methods through __getattr__, per event loop.
    """
    return getattr(parent, name, None) or parent.__getattr__(name)


class Noting:
    """What a channel layer carried: every message sent, to a channel or a group."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.carried: list[dict[str, Any]] = []

    async def send(self, channel: str, message: dict[str, Any]) -> None:
        self.carried.append(message)
        await layer_method(super(), "send")(channel, message)

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        self.carried.append(message)
        await layer_method(super(), "group_send")(group, message)

    async def group_add(self, group: str, channel: str) -> None:
        self.carried.append({"type": "group.add", "group": group, "channel": channel})
        await layer_method(super(), "group_add")(group, channel)

    async def group_discard(self, group: str, channel: str) -> None:
        self.carried.append({"type": "group.discard", "group": group, "channel": channel})
        await layer_method(super(), "group_discard")(group, channel)


class NotingInMemoryLayer(Noting, InMemoryChannelLayer):
    pass


class NotingRedisLayer(Noting, RedisPubSubChannelLayer):
    pass


def use_layer(settings: Any, in_memory: type, redis: type) -> None:
    """The configured layer (in-memory, or Redis when hosted), as the given subclass."""
    config = settings.CHANNEL_LAYERS["default"]
    chosen = redis if "redis" in config["BACKEND"] else in_memory
    settings.CHANNEL_LAYERS = {"default": {**config, "BACKEND": f"{__name__}.{chosen.__name__}"}}


@pytest.fixture
def layer(settings: Any) -> Noting:
    use_layer(settings, NotingInMemoryLayer, NotingRedisLayer)
    return get_channel_layer()  # type: ignore[return-value]


class Gated:
    """A channel layer whose group joins wait until the test opens the gate."""

    gate = asyncio.Event()

    async def group_add(self, group: str, channel: str) -> None:
        await Gated.gate.wait()
        await layer_method(super(), "group_add")(group, channel)


class GatedInMemoryLayer(Gated, InMemoryChannelLayer):
    pass


class GatedRedisLayer(Gated, RedisPubSubChannelLayer):
    pass


@pytest.fixture
def gated_layer(settings: Any) -> type[Gated]:
    use_layer(settings, GatedInMemoryLayer, GatedRedisLayer)
    Gated.gate = asyncio.Event()
    return Gated


def turn_events(layer: Noting) -> list[str]:
    return [m["event"]["type"] for m in layer.carried if m["type"] == "chat.event"]


def control_messages(layer: Noting) -> list[str]:
    return [m["type"] for m in layer.carried if m["type"].startswith("turn.")]


async def test_every_socket_here_gets_each_event_once_in_order_without_the_layer(
    alice: Any, fake: Any, layer: Noting
) -> None:
    fake.scenario = Scenario(tokens=300, reasoning_tokens=0, delay=0.003)
    sender = await open_socket(alice)
    watcher = await open_socket(alice)
    await sender.send_message("Hello")
    start = (await sender.until("start"))[-1]
    await watcher.send(type="join", conversation=start["conversation"])

    seen_by_sender = [start, *await sender.until("done")]
    seen_by_watcher = await watcher.until("done")

    expected = "".join(content_tokens(fake.scenario))
    assert text_of(seen_by_sender) == expected
    assert text_of(seen_by_watcher) == expected
    assert [e["seq"] for e in seen_by_sender] == list(range(len(seen_by_sender)))
    assert seen_by_watcher[0]["type"] == "joined"
    assert "delta" not in turn_events(layer) and "snapshot" not in turn_events(layer)
    # Only a layer that reaches other workers hears that a turn began and ended.
    assert turn_events(layer) == (
        [] if isinstance(layer, InMemoryChannelLayer) else ["start", "done"]
    )
    assert "turn.snapshot" not in control_messages(layer)
    await sender.close()
    await watcher.close()


async def test_stop_from_another_socket_here_reaches_the_turn_directly(
    alice: Any, fake: Any, layer: Noting
) -> None:
    fake.scenario = Scenario(tokens=3000, reasoning_tokens=0, delay=0.01)
    sender = await open_socket(alice)
    other_tab = await open_socket(alice)
    await sender.send_message("Go on and on")
    conversation = (await sender.until("start"))[-1]["conversation"]
    await sender.until("delta")
    await other_tab.send(type="join", conversation=conversation)
    await other_tab.until("snapshot")
    await other_tab.send(type="stop", conversation=conversation)

    done = (await sender.until("done"))[-1]
    assert done["status"] == "stopped"
    assert (await other_tab.until("done"))[-1]["status"] == "stopped"
    assert "turn.stop" not in control_messages(layer)
    await sender.close()
    await other_tab.close()


@pytest.mark.skipif(not hosted(), reason="needs REDIS_URL: one process has no control groups")
async def test_a_turn_listens_for_stop_and_snapshot_requests_only_while_it_runs(
    alice: Any, fake: Any, layer: Noting
) -> None:
    socket = await open_socket(alice)
    conversation = (await socket.turn("First"))[0]["conversation"]
    await socket.turn("Second", conversation=conversation)
    await socket.close()

    control = control_group(conversation)
    joins = [(m["type"], m["channel"]) for m in layer.carried if m.get("group") == control]
    channel = joins[0][1]
    # Each turn joins its conversation's control group and leaves it as it ends.
    assert joins == [("group.add", channel), ("group.discard", channel)] * 2


async def test_a_turn_asks_the_upstream_before_its_socket_joins_the_layer_group(
    alice: Any, fake: Any, gated_layer: type[Gated]
) -> None:
    socket = await open_socket(alice)
    await socket.send_message("Hi")
    await wait_for(lambda: fake.requests, timeout=3)
    assert len(fake.requests) == 1  # the group join is still waiting

    gated_layer.gate.set()
    events = await socket.until("done")
    assert events[0]["type"] == "start"
    assert text_of(events) == "".join(content_tokens(fake.scenario))
    await socket.close()


async def test_tokens_are_coalesced_but_the_first_is_never_held_back(
    alice: Any, fake: Any, settings: Any
) -> None:
    settings.GLMWEB_COALESCE_SECONDS = 0.2
    fake.scenario = Scenario(tokens=400, reasoning_tokens=0, delay=0.001)
    socket = await open_socket(alice)
    events = await socket.turn("Many small tokens")
    deltas = [e for e in events if e["type"] == "delta"]

    tokens = content_tokens(fake.scenario)
    assert deltas[0]["content"] == tokens[0]
    assert "".join(d["content"] for d in deltas) == "".join(tokens)
    assert len(deltas) < len(tokens) / 4
    await socket.close()


async def test_frames_close_together_share_one_session_check(
    alice: Any, fake: Any, settings: Any
) -> None:
    socket = await open_socket(alice)
    conversation = (await socket.turn("Hi"))[-1]["conversation"]
    counts = []
    for recheck_seconds in (0, 60):
        settings.GLMWEB_SESSION_RECHECK_SECONDS = recheck_seconds
        async with QueryCounter() as queries:
            await socket.send(type="join", conversation=conversation)
            await socket.until("joined")
        counts.append(queries.count)
    checked, reused = counts
    assert reused < checked
    await socket.close()


@pytest.mark.parametrize("frame", ["join", "send"])
async def test_a_logout_ends_the_socket_at_its_next_frame_after_the_recheck_time(
    alice: Any, fake: Any, settings: Any, frame: str
) -> None:
    settings.GLMWEB_SESSION_RECHECK_SECONDS = 0.2
    socket = await open_socket(alice)
    conversation = (await socket.turn("Hi"))[-1]["conversation"]
    await database_sync_to_async(_delete_sessions)()
    await asyncio.sleep(0.3)

    if frame == "join":
        await socket.send(type="join", conversation=conversation)
    else:
        await socket.send_message("Am I still here?", conversation=conversation)
    assert (await socket.event())["code"] == "not_authenticated"
    assert (await socket.communicator.receive_output())["type"] == "websocket.close"
    assert len(fake.requests) == 1
    assert await database_sync_to_async(_message_count)(conversation) == 2  # "Hi" and its reply


def _message_count(conversation: str) -> int:
    from chat.models import Message

    return Message.objects.filter(conversation_id=conversation).count()


def _delete_sessions() -> None:
    from django.contrib.sessions.models import Session

    Session.objects.all().delete()


async def test_turns_running_together_are_checkpointed_while_they_stream(
    alice: Any, fake: Any, settings: Any
) -> None:
    settings.GLMWEB_CHECKPOINT_SECONDS = 0.2
    fake.scenario = Scenario(tokens=300, reasoning_tokens=0, delay=0.01)
    expected = "".join(content_tokens(fake.scenario))
    sockets = [await open_socket(alice) for _ in range(3)]
    replies = []
    for index, socket in enumerate(sockets):
        await socket.send_message(f"Reply {index}")
        replies.append((await socket.until("start"))[-1]["reply"])

    for _ in range(100):
        saved = await database_sync_to_async(_saved_texts)(replies)
        if all(status == "streaming" and text for status, text in saved):
            break
        await asyncio.sleep(0.05)
    assert all(status == "streaming" and expected.startswith(text) for status, text in saved)
    assert all(text for _, text in saved)

    for socket in sockets:
        assert (await socket.until("done"))[-1]["status"] == "complete"
        await socket.close()
    saved = await database_sync_to_async(_saved_texts)(replies)
    assert saved == [("complete", expected)] * 3


def _saved_texts(replies: list[str]) -> list[tuple[str, str]]:
    from chat.models import Message

    by_id = {str(m.id): (m.status, m.content) for m in Message.objects.filter(id__in=replies)}
    return [by_id[reply] for reply in replies]


def test_a_checkpoint_saves_only_replies_still_streaming(alice: Any) -> None:
    from chat.models import Conversation, Message
    from chat.turns.saving import save_checkpoints

    conversation = Conversation.objects.create(owner=alice, title="Checkpoints")
    streaming, finished = (
        Message.objects.create(
            conversation=conversation, role="assistant", status=status, content="so far"
        )
        for status in ("streaming", "complete")
    )
    before = Message.objects.get(id=streaming.id).updated_at

    save_checkpoints.__wrapped__(
        [(m.id, "so far, and more", "thinking") for m in (streaming, finished)]
    )

    streaming.refresh_from_db()
    finished.refresh_from_db()
    assert (streaming.content, streaming.reasoning) == ("so far, and more", "thinking")
    assert streaming.updated_at > before  # the stale-reply sweep reads it
    assert (finished.content, finished.reasoning) == ("so far", "")
