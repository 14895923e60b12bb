"""Shared fixtures: named users (alice owns, bob must not see), the loopback fake
upstream, and authenticated chat sockets."""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import channels.db
import django.db
import pytest
from asgiref.sync import SyncToAsync
from channels.db import database_sync_to_async
from channels.layers import channel_layers
from channels.testing import WebsocketCommunicator
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.db import connection, connections
from django.test import Client
from django.test.utils import CaptureQueriesContext

from bench.fake_upstream import FakeUpstream, Scenario
from chat.turns import runner

PASSWORD = "a long enough test password 1"
EVENT_TIMEOUT = 10


def hosted() -> bool:
    return bool(os.environ.get("DATABASE_URL")) and bool(os.environ.get("REDIS_URL"))


@pytest.fixture(autouse=True)
def fresh_channel_layer() -> None:
    # Each test runs in its own event loop; the in-memory layer's queues must
    # not outlive it.
    channel_layers.backends.clear()
    runner.RUNNING.clear()


@pytest.fixture(autouse=True)
def close_old_connections_restored() -> Iterator[None]:
    # channels' test communicators mock.patch channels.db.close_old_connections
    # to a no-op around each send and receive; communicators awaited together
    # (asyncio.gather) unwind those patches out of order and can leave the no-op
    # in place, which turns off Django's connection health checks for every
    # later test (a PostgreSQL connection ended by the server then stays dead).
    yield
    channels.db.close_old_connections = django.db.close_old_connections


@pytest.fixture(autouse=True)
def no_generated_titles(settings: Any) -> None:
    # A title request after each first reply would add to fake.requests;
    # tests/test_titles.py turns them on.
    settings.GLMWEB_GENERATED_TITLES = False


@pytest.fixture(autouse=True, scope="session")
def no_sockets_counted_from_an_earlier_run() -> None:
    # User ids start again in a new test database; sockets an earlier run left
    # open would count against this run's users until they expire.
    if django_settings.REDIS_URL:
        import redis

        client = redis.Redis.from_url(django_settings.REDIS_URL)
        for key in client.scan_iter(f"{django_settings.REDIS_PREFIX}:sockets:*"):
            client.delete(key)


@pytest.fixture(autouse=True, scope="session")
def close_connections_of_the_database_thread(
    django_db_setup: None, django_db_blocker: Any
) -> Iterator[None]:
    # database_sync_to_async, awaited in a test's own event loop, runs on
    # asgiref's one executor thread and keeps a connection there; close it
    # before the test database is dropped. (Under async_to_sync it would run on
    # this thread and close the wrong connection.)
    yield
    with django_db_blocker.unblock():
        SyncToAsync.single_thread_executor.submit(connections.close_all).result()


def use_models(*entries: dict[str, Any]) -> list[Any]:
    """The admin's model rows, replaced by these (GLMWEB_MODELS' fields, prices, label...)."""
    from chat.models import ChatModel

    ChatModel.objects.all().delete()
    return [
        ChatModel.objects.create(position=index, **entry) for index, entry in enumerate(entries)
    ]


def make_user(username: str, **fields: Any) -> Any:
    return get_user_model().objects.create_user(username=username, password=PASSWORD, **fields)


@pytest.fixture
def alice(db: None) -> Any:
    return make_user("alice")


@pytest.fixture
def bob(db: None) -> Any:
    return make_user("bob")


@pytest.fixture
async def fake(settings: Any) -> AsyncIterator[FakeUpstream]:
    """The fake upstream on loopback, and the app pointed at it."""
    async with FakeUpstream(Scenario()) as upstream:
        settings.UPSTREAM_BASE_URL = upstream.base_url
        settings.UPSTREAM_API_KEY = "test-key-not-a-real-one"
        settings.GLMWEB_DEMO_MODEL = False
        settings.UPSTREAM_CHUNK_TIMEOUT = 2.0
        settings.UPSTREAM_RETRY_AFTER_MAX_SECONDS = 2.0
        yield upstream


def session_cookie(user: Any) -> str:
    client = Client()
    client.force_login(user)
    return client.cookies[django_settings.SESSION_COOKIE_NAME].value


class ChatSocket:
    """A chat socket as a client sees it: frames out, events in."""

    def __init__(self, communicator: WebsocketCommunicator) -> None:
        self.communicator = communicator

    async def send(self, **frame: Any) -> None:
        await self.communicator.send_to(text_data=json.dumps(frame))

    async def send_message(
        self,
        content: str,
        conversation: str | None = None,
        client_id: str | None = None,
        **extra: Any,
    ) -> None:
        await self.send(
            type="send",
            conversation=conversation,
            content=content,
            client_id=client_id or os.urandom(8).hex(),
            **extra,
        )

    async def event(self, timeout: float = EVENT_TIMEOUT) -> dict[str, Any]:
        return json.loads(await self.communicator.receive_from(timeout=timeout))

    async def until(self, *types: str, timeout: float = EVENT_TIMEOUT) -> list[dict[str, Any]]:
        """Events up to and including the first of one of these types."""
        events = []
        while True:
            event = await self.event(timeout)
            events.append(event)
            if event["type"] in types:
                return events

    async def turn(self, content: str, **kwargs: Any) -> list[dict[str, Any]]:
        await self.send_message(content, **kwargs)
        return await self.until("done", "error")

    async def nothing_more(self, timeout: float = 0.3) -> bool:
        return await self.communicator.receive_nothing(timeout=timeout)

    async def close(self) -> None:
        await self.communicator.disconnect()


async def open_socket(
    user: Any | None, origin: str = "http://127.0.0.1", cookie: str | None = None
) -> ChatSocket:
    """A socket logged in as ``user``: a new login, or the one ``cookie`` names."""
    from glmweb.asgi import application

    headers = [(b"origin", origin.encode()), (b"host", b"127.0.0.1")]
    if user is not None:
        cookie = cookie or await database_sync_to_async(session_cookie)(user)
        headers.append((b"cookie", f"{django_settings.SESSION_COOKIE_NAME}={cookie}".encode()))
    communicator = WebsocketCommunicator(application, "/ws/chat/", headers=headers)
    connected, _ = await communicator.connect(timeout=EVENT_TIMEOUT)
    assert connected
    return ChatSocket(communicator)


async def wait_for(condition: object, timeout: float = 1.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def text_of(events: list[dict[str, Any]], field: str = "content") -> str:
    """The reply as a client assembles it: the last snapshot, then later deltas."""
    text, last_seq = "", -1
    for event in events:
        if event["type"] == "snapshot":
            text, last_seq = event[field], event["seq"]
        elif event["type"] == "delta" and event["seq"] > last_seq:
            text += event.get(field, "")
            last_seq = event["seq"]
    return text


class QueryCounter:
    """Counts the queries of code that reaches the database through
    database_sync_to_async: they run on its thread, which captures them."""

    count = 0
    captures = threading.local()

    async def __aenter__(self) -> QueryCounter:
        await database_sync_to_async(self._start)()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.count = await database_sync_to_async(self._finish)()

    def _start(self) -> None:
        self.captures.context = CaptureQueriesContext(connection)
        self.captures.context.__enter__()

    def _finish(self) -> int:
        self.captures.context.__exit__(None, None, None)
        return len(self.captures.context.captured_queries)
