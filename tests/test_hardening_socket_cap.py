"""The per-person socket cap counts the sockets of every worker (issue 18, 4).

It counted per worker process: with two workers a person could hold twice
GLMWEB_MAX_SOCKETS_PER_USER. With Redis the count is a sorted set per
person whose entries expire unless their worker renews them, so a killed
worker's sockets stop counting; without Redis (one process) it is counted
in the process.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
import redis
import websockets
from django.conf import settings as django_settings

from chat.live import socket_counts
from tests.conftest import hosted, open_socket
from tests.servers import App, RemoteSocket, glmweb_app, login_cookie

pytestmark = pytest.mark.django_db(transaction=True)
needs_redis = pytest.mark.skipif(not hosted(), reason="needs DATABASE_URL and REDIS_URL")


async def refused(socket) -> bool:
    error = await socket.event()
    closed = await socket.communicator.receive_output()
    return error["code"] == "too_many_sockets" and closed["code"] == 4429


async def test_a_closed_socket_gives_its_place_back(alice, settings) -> None:
    settings.GLMWEB_MAX_SOCKETS_PER_USER = 2
    first, second = await open_socket(alice), await open_socket(alice)
    assert await refused(await open_socket(alice))

    await first.close()
    third = await open_socket(alice)
    assert await third.nothing_more()
    for socket in (second, third):
        await socket.close()


@needs_redis
async def test_sockets_of_other_workers_count_until_their_entries_expire(
    alice, settings, monkeypatch
) -> None:
    settings.GLMWEB_MAX_SOCKETS_PER_USER = 2
    monkeypatch.setattr(socket_counts, "TTL_SECONDS", 1.0)
    monkeypatch.setattr(socket_counts, "RENEW_SECONDS", 0.2)
    key = f"{django_settings.REDIS_PREFIX}:sockets:{alice.id}"
    other_workers = redis.Redis.from_url(django_settings.REDIS_URL)
    # One socket open on another worker, and one a killed worker left behind.
    other_workers.zadd(key, {"live-elsewhere": time.time() + 60, "dead-worker": time.time() - 1})

    here = await open_socket(alice)
    assert await refused(await open_socket(alice))

    await asyncio.sleep(1.5)  # past the TTL: this worker renewed its own entry
    assert set(other_workers.zrange(key, 0, -1)) == {b"live-elsewhere", here_name(alice)}
    other_workers.zrem(key, "live-elsewhere")
    again = await open_socket(alice)
    assert await again.nothing_more()
    for socket in (here, again):
        await socket.close()
    assert other_workers.zcard(key) == 0


def here_name(user) -> bytes:
    names = socket_counts._here[user.id]
    assert len(names) == 1
    return next(iter(names)).encode()


# --- Two real workers -----------------------------------------------------------------


@pytest.fixture
def app() -> Iterator[App]:
    with glmweb_app("http://127.0.0.1:9/v1", GLMWEB_MAX_SOCKETS_PER_USER="3") as running:
        running.create_user("alice")
        yield running


@needs_redis
async def test_the_cap_counts_the_sockets_on_every_worker(app: App) -> None:
    a = await asyncio.to_thread(app.start_worker, "a")
    b = await asyncio.to_thread(app.start_worker, "b")
    cookie = await asyncio.to_thread(login_cookie, a, "alice")
    on_a = [await RemoteSocket.open(a, cookie), await RemoteSocket.open(a, cookie)]
    on_b = await RemoteSocket.open(b, cookie)

    fourth = await RemoteSocket.open(b, cookie)
    assert (await fourth.event())["code"] == "too_many_sockets"
    with pytest.raises(websockets.ConnectionClosed) as closed:
        await fourth.event()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4429

    await on_a[0].close()
    await asyncio.sleep(0.3)  # the worker hears of the close
    again = await RemoteSocket.open(b, cookie)
    await again.send(type="join", conversation="00000000-0000-0000-0000-000000000000")
    assert (await again.event())["code"] == "not_found"  # open, and answering
    for socket in (on_a[1], on_b, again):
        await socket.close()
