"""Limits hold under concurrency: replies in flight hold their tokens, a reply is
capped to what its limit leaves, and a person runs three replies at once by default."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.db import connection
from django.db.models import Sum
from django.utils import timezone

from bench.fake_upstream import Scenario
from chat.models import DailyUsage, Message
from chat.turns import starting
from chat.usage import limits
from tests.conftest import open_socket

pytestmark = pytest.mark.django_db(transaction=True)


@database_sync_to_async
def tokens_spent(user: Any) -> int:
    return DailyUsage.objects.filter(user=user).aggregate(total=Sum("total_tokens", default=0))[
        "total"
    ]


@database_sync_to_async
def held_now(user: Any) -> int:
    return limits.in_flight(user.id, timezone.now())[1]


async def first_answer(socket: Any) -> dict[str, Any]:
    """The send's start, or the error that refused it."""
    return (await socket.until("start", "error"))[-1]


async def test_eight_sends_at_once_stay_within_a_20_token_daily_limit(
    alice: Any, fake: Any, settings: Any
) -> None:
    settings.GLMWEB_LIMIT_TOKENS_PER_DAY = 20
    settings.GLMWEB_LIMIT_CONCURRENT_GENERATIONS = 0
    fake.scenario = Scenario(tokens=12, reasoning_tokens=4, delay=0.05)
    sockets = [await open_socket(alice) for _ in range(8)]

    await asyncio.gather(*(socket.send_message("Quick one") for socket in sockets))
    answers = await asyncio.gather(*(first_answer(socket) for socket in sockets))
    started = [s for s, answer in zip(sockets, answers, strict=True) if answer["type"] == "start"]
    await asyncio.gather(*(socket.until("done", "error") for socket in started))

    assert started, answers
    assert await tokens_spent(alice) <= 20
    assert all(body["max_tokens"] <= 20 for body in fake.requests)
    refusals = [answer for answer in answers if answer["type"] == "error"]
    assert len(refusals) == 8 - len(started)
    for refusal in refusals:
        assert refusal["code"] == "limit_reached"
        assert "daily limit of 20 tokens" in refusal["message"]
        assert "resets at" in refusal["message"]
    for socket in sockets:
        await socket.close()


async def test_a_reply_is_capped_to_what_the_limit_leaves(
    alice: Any, fake: Any, settings: Any
) -> None:
    settings.GLMWEB_LIMIT_TOKENS_PER_MONTH = 1000
    settings.GLMWEB_LIMIT_TOKENS_PER_DAY = 60
    socket = await open_socket(alice)

    events = await socket.turn("Quick one", params={"max_tokens": 500})

    # The daily limit is the tighter: 60 less the prompt's estimated 7 tokens.
    assert fake.requests[-1]["max_tokens"] == 53
    assert events[-1]["type"] == "done"
    spent = await tokens_spent(alice)
    assert spent <= 60
    await socket.send_message("Now a message far too long for what is left " * 10)
    refusal = await socket.event()
    assert refusal["code"] == "limit_reached"
    assert "daily limit of 60 tokens" in refusal["message"]
    assert f"leaves {60 - spent}" in refusal["message"]
    assert len(fake.requests) == 1
    await socket.close()


@pytest.mark.parametrize(
    "ending",
    [
        "stop",
        Scenario(tokens=400, reasoning_tokens=0, delay=0.01, error_after=30),
    ],
    ids=["stopped", "failed"],
)
async def test_a_replys_saved_usage_replaces_what_it_held(
    alice: Any, fake: Any, settings: Any, ending: Any
) -> None:
    settings.GLMWEB_LIMIT_TOKENS_PER_DAY = 1000
    fake.scenario = Scenario(tokens=400, reasoning_tokens=0, delay=0.01)
    if ending != "stop":
        fake.scenario = ending
    socket = await open_socket(alice)
    await socket.send_message("Tell me a long story")
    start = (await socket.until("delta"))[0]

    assert await held_now(alice) == 1000  # its prompt and the rest of the limit
    if ending == "stop":
        await socket.send(type="stop", conversation=start["conversation"])
    await socket.until("done", "error")

    assert await held_now(alice) == 0
    spent = await tokens_spent(alice)
    assert 0 < spent < 100
    fake.scenario = Scenario()
    await socket.send_message("And another")
    await socket.until("done")
    assert fake.requests[-1]["max_tokens"] == 1000 - spent - 7  # "And another": 7 tokens
    await socket.close()


async def test_ten_sends_at_once_start_three_replies_by_default(alice: Any, fake: Any) -> None:
    fake.scenario = Scenario(tokens=400, reasoning_tokens=0, delay=0.02)
    sockets = [await open_socket(alice) for _ in range(10)]

    await asyncio.gather(*(socket.send_message("Me too") for socket in sockets))
    answers = await asyncio.gather(*(first_answer(socket) for socket in sockets))

    starts = [answer for answer in answers if answer["type"] == "start"]
    refusals = [answer for answer in answers if answer["type"] == "error"]
    assert len(starts) == 3, answers
    assert len(refusals) == 7
    for refusal in refusals:
        assert refusal["code"] == "limit_reached"
        assert "limit of 3 simultaneous replies" in refusal["message"]
        assert "frees up as soon as one of them finishes" in refusal["message"]
    assert fake.active_streams <= 3
    for socket, answer in zip(sockets, answers, strict=True):
        if answer["type"] == "start":
            await socket.send(type="stop", conversation=answer["conversation"])
            await socket.until("done")
    assert len(fake.requests) == 3
    for socket in sockets:
        await socket.close()


@pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="PostgreSQL runs the starts at once; SQLite serialises all writers (and its test "
    "database is in memory, shared by threads through table locks)",
)
def test_starts_on_eight_connections_hold_no_more_than_the_limit(alice: Any, settings: Any) -> None:
    """As on eight workers: what one start holds, the others see."""
    settings.GLMWEB_LIMIT_TOKENS_PER_DAY = 20
    settings.GLMWEB_LIMIT_CONCURRENT_GENERATIONS = 0
    barrier = threading.Barrier(8)

    def send(index: int) -> Any:
        try:
            barrier.wait()
            return starting.begin_send(alice.id, None, "Quick one", f"start-{index}", {})
        except starting.TurnRefused as refusal:
            return refusal.code
        finally:
            connection.close()

    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(send, range(8)))

    turns = [outcome for outcome in outcomes if isinstance(outcome, starting.Turn)]
    assert len(turns) == 1 and outcomes.count("limit_reached") == 7
    held = Message.objects.filter(status=Message.Status.STREAMING).aggregate(
        total=Sum("reserved_tokens")
    )["total"]
    assert held == 20
    assert turns[0].request.max_tokens == 13  # 20 less the prompt's estimated 7
