"""Limits: checked before anything goes upstream, named with their reset time,
per person over site defaults, and not slipped past by racing sends."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from django.db import connection
from django.utils import timezone

from bench.fake_upstream import Scenario
from chat.models import DailyUsage, UserLimits
from chat.turns import starting
from tests.conftest import open_socket

pytestmark = pytest.mark.django_db(transaction=True)


@database_sync_to_async
def spent_today(user, tokens: int, days_ago: int = 0) -> None:
    DailyUsage.objects.create(
        user=user,
        day=timezone.localdate() - timedelta(days=days_ago),
        model="glm-5",
        prompt_tokens=tokens,
        total_tokens=tokens,
        replies=1,
    )


@database_sync_to_async
def set_limits(user, **limits: int | None) -> None:
    UserLimits.objects.update_or_create(user=user, defaults=limits)


async def refused(socket, content: str = "Over the limit?", **kwargs) -> dict:
    await socket.send_message(content, **kwargs)
    # A reply already streaming on this socket may interleave its deltas.
    error = (await socket.until("error", "start"))[-1]
    assert error["type"] == "error", error
    assert error["code"] == "limit_reached"
    return error


async def test_the_daily_token_limit_refuses_before_the_upstream(alice, fake, settings):
    settings.GLMWEB_LIMIT_TOKENS_PER_DAY = 1000
    await spent_today(alice, 990)
    socket = await open_socket(alice)
    assert (await socket.turn("Ten left"))[-1]["type"] == "done"
    assert len(fake.requests) == 1
    assert fake.requests[0]["max_tokens"] == 4  # ten left, less the prompt's six

    error = await refused(socket)

    tomorrow = timezone.localdate() + timedelta(days=1)
    assert "daily limit of 1,000 tokens" in error["message"]
    assert f"resets at {tomorrow:%Y-%m-%d} 00:00" in error["message"]
    assert len(fake.requests) == 1
    await socket.close()


async def test_the_monthly_token_limit_names_the_first_of_next_month(alice, fake, settings):
    settings.GLMWEB_LIMIT_TOKENS_PER_MONTH = 5000
    today = timezone.localdate()
    await spent_today(alice, 5000, days_ago=0)
    socket = await open_socket(alice)

    error = await refused(socket)

    first = (today.replace(day=1) + timedelta(days=32)).replace(day=1)
    assert "monthly limit of 5,000 tokens" in error["message"]
    assert f"resets at {first:%Y-%m-%d} 00:00" in error["message"]
    assert fake.requests == []
    await socket.close()


async def test_replies_per_minute(alice, fake, settings):
    settings.GLMWEB_LIMIT_REPLIES_PER_MINUTE = 2
    socket = await open_socket(alice)
    first = await socket.turn("One")
    await socket.turn("Two", conversation=first[0]["conversation"])

    error = await refused(socket, conversation=first[0]["conversation"])

    assert "limit of 2 replies per minute" in error["message"]
    assert "resets at" in error["message"]
    assert len(fake.requests) == 2
    await socket.send(type="regenerate", conversation=first[0]["conversation"])
    assert (await socket.event())["code"] == "limit_reached"
    assert len(fake.requests) == 2
    await socket.close()


async def test_simultaneous_generations(alice, fake, settings):
    settings.GLMWEB_LIMIT_CONCURRENT_GENERATIONS = 1
    fake.scenario = Scenario(tokens=400, delay=0.02)
    socket = await open_socket(alice)
    await socket.send_message("A long one")
    conversation = (await socket.until("start"))[0]["conversation"]

    error = await refused(socket, "And another one in a new chat")

    assert "limit of 1 simultaneous reply" in error["message"]
    assert len(fake.requests) == 1
    await socket.send(type="stop", conversation=conversation)
    await socket.until("done")
    fake.scenario = Scenario()
    assert (await socket.turn("Now it fits"))[-1]["type"] == "done"
    await socket.close()


async def test_a_persons_own_limits_override_the_site_defaults(alice, bob, fake, settings):
    settings.GLMWEB_LIMIT_TOKENS_PER_DAY = 100
    await spent_today(alice, 500)
    await spent_today(bob, 50)
    await set_limits(alice, tokens_per_day=0)  # unlimited for alice
    await set_limits(bob, tokens_per_day=10)

    alices = await open_socket(alice)
    assert (await alices.turn("I may"))[-1]["type"] == "done"
    bobs = await open_socket(bob)
    error = await refused(bobs)
    assert "daily limit of 10 tokens" in error["message"]
    assert len(fake.requests) == 1
    await alices.close()
    await bobs.close()


@pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="PostgreSQL row locks; SQLite serialises all writers (and its test database is "
    "in memory, shared by threads through table locks)",
)
def test_racing_sends_cannot_slip_past_the_concurrency_limit(alice, settings) -> None:
    """Four sends at once, each in its own thread and database connection."""
    settings.GLMWEB_LIMIT_CONCURRENT_GENERATIONS = 1
    UserLimits.objects.create(user=alice)
    barrier = threading.Barrier(4)

    def send(index: int) -> str:
        try:
            barrier.wait()
            starting.begin_send(alice.id, None, f"Race {index}", f"race-{index}", {})
            return "started"
        except starting.TurnRefused as refusal:
            return refusal.code
        finally:
            connection.close()

    with ThreadPoolExecutor(4) as pool:
        outcomes = sorted(pool.map(send, range(4)))

    assert outcomes == ["limit_reached"] * 3 + ["started"]
