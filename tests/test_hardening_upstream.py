"""Issue 18, findings 1 and 5: the provider's key never comes back out of its error
texts (frame, saved reply, pages, exports, logs), and retries are few and honest
about rate limits. Against the real loopback fake upstream, counted on its side."""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.test import Client
from django.urls import reverse

# Loaded now: loading the ASGI app runs django.setup(), which configures logging
# afresh and would drop caplog's handler in the first test that opens a socket.
import glmweb.asgi  # noqa: F401
from bench.fake_upstream import FakeUpstream, Scenario
from chat.models import Message
from chat.turns import titles
from chat.upstream import (
    ChatRequest,
    RateLimited,
    StreamError,
    Unreachable,
    UpstreamConfig,
    UpstreamError,
    complete_chat,
    stream_chat,
    wait_in_words,
)
from chat.upstream.redaction import redact
from tests.conftest import make_user, open_socket

# A Zhipu/GLM key: a 32-hex id, a dot, the secret.
KEY_ID = "5f0c2a9e8b7d4c13a6e1f2b3c4d5e6f7"
KEY_SECRET = "Xq3LmZr8TwVb2NpK"
GLM_KEY = f"{KEY_ID}.{KEY_SECRET}"
# A gateway's key of no known shape: only the configured value can catch it.
ODD_KEY = "gw_Lk29sPq7Zx81Vn4cRt"

ECHOED_400 = (
    '{"error": {"message": "Invalid request for key {api_key} see http://docs.example.com/e"}}'
)
ECHOED_MID_STREAM = "Upstream failure for token {api_key}"
REQUEST = ChatRequest(model="glm-5", messages=[{"role": "user", "content": "Hi"}])


def leaks(text: str, key: str = GLM_KEY) -> bool:
    """Whether `text` holds the key or any part of it worth hiding."""
    return any(part in text for part in (key, *key.split(".")))


def logged(caplog: pytest.LogCaptureFixture) -> str:
    """Every captured record as a log handler could write it: message, extras, traceback."""
    formatter = logging.Formatter("%(message)s")
    return "\n".join(f"{formatter.format(r)} {vars(r)}" for r in caplog.records)


@database_sync_to_async
def saved_error(conversation_id: str) -> str:
    reply = Message.objects.get(conversation_id=conversation_id, role=Message.Role.ASSISTANT)
    return reply.error_message


@database_sync_to_async
def everything_served(owner: Any, conversation_id: str) -> dict[str, str]:
    """The conversation as its owner's pages and exports and the admin review show it."""
    client = Client()
    client.force_login(owner)
    admin = Client()
    admin.force_login(make_user("root", is_staff=True, is_superuser=True))
    args = [conversation_id]
    return {
        "page": client.get(reverse("chat:conversation", args=args)).content.decode(),
        "json": client.get(reverse("chat:export_json", args=args)).content.decode(),
        "markdown": client.get(reverse("chat:export_md", args=args)).content.decode(),
        "account": b"".join(client.get(reverse("chat:export_account")).streaming_content).decode(),
        "admin": admin.get(reverse("admin:chat_conversation_change", args=args)).content.decode(),
    }


# --- Finding 1: the key echoed back by the provider ------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("key", [GLM_KEY, ODD_KEY], ids=["glm-key", "odd-key"])
@pytest.mark.parametrize(
    ("scenario", "code", "shown"),
    [
        (Scenario(status=400, error_body=ECHOED_400), "upstream_bad_request", "Invalid request"),
        (
            Scenario(tokens=20, reasoning_tokens=0, error_after=3, error_message=ECHOED_MID_STREAM),
            "upstream_error",
            "Upstream failure for token",
        ),
    ],
    ids=["400-body", "mid-stream-error"],
)
async def test_an_echoed_key_is_never_shown_saved_served_or_logged(
    alice, fake, settings, caplog, key, scenario, code, shown
) -> None:
    settings.UPSTREAM_API_KEY = key
    settings.UPSTREAM_MAX_RETRIES = 0
    caplog.set_level(logging.DEBUG)
    fake.scenario = scenario
    socket = await open_socket(alice)

    error = (await socket.turn("Hello"))[-1]
    await socket.close()

    assert fake.headers[0]["authorization"] == f"Bearer {key}"  # the fake had it to echo
    assert error["type"] == "error" and error["code"] == code
    assert shown in error["message"] and not leaks(str(error), key)
    saved = await saved_error(error["conversation"])
    assert shown in saved and not leaks(saved, key)
    served = await everything_served(alice, error["conversation"])
    assert shown in served["json"]
    for name, text in served.items():
        assert not leaks(text, key), name
    assert "upstream" in logged(caplog) and not leaks(logged(caplog), key)


@pytest.mark.django_db(transaction=True)
async def test_a_failed_title_request_logs_no_key(alice, fake, settings, caplog) -> None:
    settings.UPSTREAM_API_KEY = GLM_KEY
    settings.GLMWEB_GENERATED_TITLES = True
    caplog.set_level(logging.DEBUG)
    fake.enqueue(Scenario(), Scenario(status=400, error_body=ECHOED_400))
    socket = await open_socket(alice)

    await socket.turn("Explain tides")
    await titles.wait_for_titles()
    await socket.close()

    assert len(fake.requests) == 2
    assert "title not generated" in logged(caplog)
    assert not leaks(logged(caplog))


async def test_a_completion_whose_body_is_an_error_names_no_key(fake, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    fake.scenario = Scenario(status=200, error_body='{"error": {"message": "bad token {api_key}"}}')

    with pytest.raises(StreamError) as caught:
        await complete_chat(REQUEST, UpstreamConfig(base_url=fake.base_url, api_key=GLM_KEY))

    assert "bad token" in caught.value.user_message
    assert not leaks(str(caught.value)) and not leaks(logged(caplog))


async def test_the_secret_part_alone_is_removed_too(fake, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    fake.scenario = Scenario(
        status=400, error_body=f'{{"error": {{"message": "secret {KEY_SECRET} is wrong"}}}}'
    )

    with pytest.raises(UpstreamError) as caught:
        async for _ in stream_chat(
            REQUEST, UpstreamConfig(base_url=fake.base_url, api_key=GLM_KEY)
        ):
            pass

    assert "is wrong" in caught.value.user_message
    assert not leaks(str(caught.value)) and not leaks(logged(caplog))


@pytest.mark.parametrize(
    "text",
    [
        f"key {GLM_KEY} denied",
        f"key {GLM_KEY[:40]}",  # cut short, as a truncated body would be
        "Authorization: Bearer abc.def-123",
        "use sk-proj-AbCdEf123456 instead",
    ],
)
def test_anything_shaped_like_a_key_is_redacted_without_knowing_it(text: str) -> None:
    cleaned = redact(text)
    assert "[redacted]" in cleaned
    assert KEY_SECRET[:4] not in cleaned and "abc.def" not in cleaned and "AbCdEf" not in cleaned


# --- Finding 5: retries -------------------------------------------------------------------


async def failure_of(fake: FakeUpstream) -> UpstreamError:
    """The error a request meets, with the default retry settings."""
    config = UpstreamConfig(base_url=fake.base_url, api_key=GLM_KEY)
    with pytest.raises(UpstreamError) as caught:
        async for _ in stream_chat(REQUEST, config):
            pass
    return caught.value


@pytest.mark.django_db(transaction=True)
async def test_a_long_retry_after_is_not_waited_for_and_says_when_to_try_again(alice, fake) -> None:
    fake.scenario = Scenario(status=429, retry_after="600")
    socket = await open_socket(alice)

    error = (await socket.turn("Now please"))[-1]
    await socket.close()

    assert len(fake.requests) == 1
    assert error["code"] == "rate_limited"
    assert "try again in 10 minutes" in error["message"]
    assert "10 minutes" in await saved_error(error["conversation"])


async def test_a_short_retry_after_is_honoured_once(fake) -> None:
    fake.scenario = Scenario(status=429, retry_after="2")
    started = time.monotonic()

    error = await failure_of(fake)

    assert isinstance(error, RateLimited)
    assert len(fake.requests) == 2
    assert time.monotonic() - started >= 2
    assert "try again in 2 seconds" in error.user_message


async def test_a_rate_limit_without_retry_after_is_retried_once(fake) -> None:
    fake.scenario = Scenario(status=429)

    error = await failure_of(fake)

    assert isinstance(error, RateLimited)
    assert len(fake.requests) == 2


@pytest.mark.django_db(transaction=True)
async def test_a_persistent_server_error_is_tried_three_times(alice, fake) -> None:
    fake.scenario = Scenario(status=500)
    socket = await open_socket(alice)

    error = (await socket.turn("Anyone there?"))[-1]
    await socket.close()

    assert error["code"] == "upstream_overloaded"
    assert len(fake.requests) == 3  # 1 + UPSTREAM_MAX_RETRIES (2 by default)


async def test_a_connection_dropped_before_any_data_is_tried_three_times(fake) -> None:
    fake.scenario = Scenario(reasoning_tokens=0, cut_after=0)

    error = await failure_of(fake)

    assert isinstance(error, Unreachable)
    assert len(fake.requests) == 3


@pytest.mark.parametrize(
    ("seconds", "words"),
    [
        (0.2, "1 second"),
        (45, "45 seconds"),
        (90, "2 minutes"),
        (600, "10 minutes"),
        (3600, "1 hour"),
        (5 * 3600 + 1, "6 hours"),
        (3 * 86400, "3 days"),
    ],
)
def test_waits_are_told_in_human_units(seconds: float, words: str) -> None:
    assert wait_in_words(seconds) == words
