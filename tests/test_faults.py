"""Upstream outages as the user meets them: retried before the first token,
never silently re-run after it, and always a clear message."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async

from bench.fake_upstream import Scenario, content_tokens
from chat.models import Message
from tests.conftest import open_socket, text_of

pytestmark = pytest.mark.django_db(transaction=True)


@database_sync_to_async
def statuses(conversation_id: str) -> list[tuple[str, str]]:
    return list(
        Message.objects.filter(conversation_id=conversation_id)
        .order_by("created_at")
        .values_list("role", "status")
    )


@pytest.mark.parametrize(
    "first",
    [
        Scenario(status=503),
        Scenario(status=529),
        Scenario(status=429, retry_after="0.2"),
        Scenario(status=500, error_body='{"error": {"message": "overloaded"}}'),
    ],
    ids=["503", "529", "429-retry-after", "500"],
)
async def test_failures_before_the_first_token_are_retried(alice, fake, first) -> None:
    fake.enqueue(first)
    socket = await open_socket(alice)

    events = await socket.turn("Please work")

    assert events[-1]["type"] == "done" and events[-1]["status"] == "complete"
    assert text_of(events) == "".join(content_tokens(fake.scenario))
    assert len(fake.requests) == 2
    await socket.close()


async def test_retries_give_up_with_a_clear_message(alice, fake, settings) -> None:
    settings.UPSTREAM_MAX_RETRIES = 2
    fake.scenario = Scenario(status=503)
    socket = await open_socket(alice)

    error = (await socket.turn("Anyone there?"))[-1]

    assert error["code"] == "upstream_overloaded"
    assert "try again" in error["message"].lower()
    assert len(fake.requests) == 3
    assert await statuses(error["conversation"]) == [("user", "complete"), ("assistant", "error")]
    await socket.close()


@pytest.mark.parametrize(
    ("scenario", "code"),
    [
        (Scenario(status=400), "upstream_bad_request"),
        (Scenario(status=401), "upstream_auth"),
        (Scenario(status=403), "upstream_auth"),
        (Scenario(status=404), "model_not_found"),
        (
            Scenario(
                status=429,
                error_body='{"error": {"message": "Insufficient balance", "code": "1113"}}',
            ),
            "upstream_quota",
        ),
    ],
    ids=["400", "401", "403", "404", "insufficient-balance"],
)
async def test_hopeless_failures_are_not_retried(alice, fake, scenario, code) -> None:
    fake.scenario = scenario
    socket = await open_socket(alice)

    error = (await socket.turn("Hello?"))[-1]

    assert error["code"] == code
    assert len(fake.requests) == 1
    await socket.close()


async def test_a_long_retry_after_is_not_waited_for(alice, fake) -> None:
    fake.scenario = Scenario(status=429, retry_after="3600")
    socket = await open_socket(alice)

    error = (await socket.turn("Now please"))[-1]

    assert error["code"] == "rate_limited"
    assert len(fake.requests) == 1
    await socket.close()


async def test_a_failure_after_tokens_is_never_rerun_and_can_be_retried(alice, fake) -> None:
    fake.scenario = Scenario(tokens=40, reasoning_tokens=0, cut_after=10)
    socket = await open_socket(alice)

    events = await socket.turn("Go")
    error = events[-1]

    assert error["status"] == "interrupted" and error["retryable"] is True
    assert len(fake.requests) == 1
    assert text_of(events) == "".join(content_tokens(fake.scenario)[:10])
    fake.scenario = Scenario(tokens=40, reasoning_tokens=0)
    await socket.send(type="regenerate", conversation=error["conversation"])
    assert (await socket.until("done", "error"))[-1]["type"] == "done"
    assert await statuses(error["conversation"]) == [
        ("user", "complete"),
        ("assistant", "interrupted"),
        ("assistant", "complete"),
    ]
    await socket.close()


async def test_keepalives_do_not_fool_the_watchdog(alice, fake, settings) -> None:
    settings.UPSTREAM_CHUNK_TIMEOUT = 0.5
    fake.scenario = Scenario(tokens=40, reasoning_tokens=0, stall_after=5, keepalive_every=0.05)
    socket = await open_socket(alice)

    error = (await socket.turn("Stall"))[-1]

    assert error["code"] == "upstream_timeout"
    assert error["status"] == "interrupted"
    await socket.close()


async def test_an_unreachable_upstream_says_so(alice, fake, settings) -> None:
    settings.UPSTREAM_BASE_URL = "http://127.0.0.1:9/v1"
    settings.UPSTREAM_MAX_RETRIES = 1
    socket = await open_socket(alice)

    error = (await socket.turn("Hello?"))[-1]

    assert error["code"] == "upstream_unreachable"
    assert "127.0.0.1" not in error["message"]
    await socket.close()


async def test_the_overall_deadline_ends_a_slow_reply(alice, fake, settings) -> None:
    settings.UPSTREAM_DEADLINE = 0.5
    fake.scenario = Scenario(tokens=200, reasoning_tokens=0, delay=0.02)
    socket = await open_socket(alice)

    events = await socket.turn("Slowly")

    assert events[-1]["code"] == "upstream_timeout"
    assert 0 < len(text_of(events)) < len("".join(content_tokens(fake.scenario)))
    await socket.close()
