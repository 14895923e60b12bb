"""stream_chat / complete_chat against the real loopback fake upstream (no mocks)."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator

import pytest

from bench.fake_upstream import FakeUpstream, Scenario, content_tokens, reasoning_tokens
from chat.upstream import (
    AuthError,
    BadRequest,
    ChatRequest,
    ContentDelta,
    Event,
    Finish,
    NotFoundError,
    Overloaded,
    ProtocolError,
    QuotaExhausted,
    RateLimited,
    ReasoningDelta,
    StreamError,
    Unreachable,
    UpstreamConfig,
    UpstreamError,
    UpstreamTimeout,
    Usage,
    close_clients,
    complete_chat,
    stream_chat,
)
from tests.conftest import wait_for

API_KEY = "sk-test-secret-key-123456"
REQUEST = ChatRequest(
    model="glm-5",
    messages=[
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Say hi in Portuguese"},
    ],
)
PROMPT_TOKENS = 2 + 4 + 4 + 4  # words + 4 per message, as the fake counts


@pytest.fixture
async def fake() -> AsyncIterator[FakeUpstream]:
    async with FakeUpstream() as server:
        yield server
    await close_clients()


def make_config(fake: FakeUpstream, **overrides: float) -> UpstreamConfig:
    settings: dict = {"backoff_base": 0.01, "chunk_timeout": 2.0, "deadline": 10.0}
    settings.update(overrides)
    return UpstreamConfig(base_url=fake.base_url, api_key=API_KEY, **settings)


async def collect(config: UpstreamConfig, request: ChatRequest = REQUEST) -> list[Event]:
    return [event async for event in stream_chat(request, config)]


async def collect_until_error(config: UpstreamConfig) -> tuple[list[Event], UpstreamError]:
    events: list[Event] = []
    with pytest.raises(UpstreamError) as caught:
        async for event in stream_chat(REQUEST, config):
            events.append(event)
    return events, caught.value


def text_of(events: list[Event], kind: type[ContentDelta] | type[ReasoningDelta]) -> str:
    return "".join(e.text for e in events if isinstance(e, kind))


def assert_safe_for_people(error: UpstreamError, fake: FakeUpstream) -> None:
    message = error.user_message
    assert message
    assert API_KEY not in message and API_KEY not in error.detail
    assert "127.0.0.1" not in message and str(fake.port) not in message
    assert "http" not in message


# --- happy paths ----------------------------------------------------------------


async def test_happy_path_streams_reasoning_content_finish_and_usage(fake: FakeUpstream) -> None:
    events = await collect(make_config(fake))
    scenario = fake.scenario
    assert text_of(events, ReasoningDelta) == "".join(reasoning_tokens(scenario))
    assert text_of(events, ContentDelta) == "".join(content_tokens(scenario))
    completion = scenario.tokens + scenario.reasoning_tokens
    assert events[-2:] == [
        Finish("stop"),
        Usage(PROMPT_TOKENS, completion, PROMPT_TOKENS + completion),
    ]
    first_content = next(i for i, e in enumerate(events) if isinstance(e, ContentDelta))
    assert all(isinstance(e, ReasoningDelta) for e in events[:first_content])


async def test_request_carries_bearer_key_and_full_context(fake: FakeUpstream) -> None:
    request = ChatRequest(model="glm-5", messages=REQUEST.messages, temperature=0.2, stop=["X"])
    await collect(make_config(fake), request)
    assert fake.headers[0]["authorization"] == f"Bearer {API_KEY}"
    body = fake.requests[0]
    assert body["messages"] == REQUEST.messages
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert body["temperature"] == 0.2 and body["stop"] == ["X"]
    assert "max_tokens" not in body and "top_p" not in body


async def test_usage_in_a_separate_chunk(fake: FakeUpstream) -> None:
    fake.scenario = Scenario(usage_separate=True, finish_reason="length")
    events = await collect(make_config(fake))
    assert isinstance(events[-1], Usage)
    assert events[-2] == Finish("length")


async def test_no_done_still_completes(fake: FakeUpstream) -> None:
    fake.scenario = Scenario(no_done=True)
    events = await collect(make_config(fake))
    assert Finish("stop") in events


async def test_json_completion_to_a_stream_request_is_understood(fake: FakeUpstream) -> None:
    # Some gateways ignore "stream": true and answer with one chat.completion.
    completion = {
        "choices": [{"message": {"content": "Whole reply."}, "finish_reason": "length"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3},
    }
    fake.scenario = Scenario(status=200, error_body=json.dumps(completion))
    events = await collect(make_config(fake))
    assert events == [ContentDelta("Whole reply."), Finish("length"), Usage(1, 2, 3)]


async def test_error_json_with_status_200_raises_stream_error(fake: FakeUpstream) -> None:
    fake.scenario = Scenario(status=200, error_body='{"error": {"message": "Model is busy."}}')
    _, error = await collect_until_error(make_config(fake))
    assert isinstance(error, StreamError)
    assert "Model is busy." in error.user_message


async def test_think_tags_become_reasoning(fake: FakeUpstream) -> None:
    fake.scenario = Scenario(think_tags=True)
    events = await collect(make_config(fake))
    assert text_of(events, ReasoningDelta) == "".join(reasoning_tokens(fake.scenario))
    assert text_of(events, ContentDelta) == "".join(content_tokens(fake.scenario))


async def test_complete_chat_returns_text_and_usage(fake: FakeUpstream) -> None:
    fake.scenario = Scenario(text="A short title", think_tags=True)
    text, usage = await complete_chat(REQUEST, make_config(fake))
    assert text == "A short title"
    assert usage is not None and usage.prompt_tokens == PROMPT_TOKENS
    assert "stream" not in fake.requests[0]


async def test_complete_chat_maps_errors(fake: FakeUpstream) -> None:
    fake.scenario = Scenario(status=401)
    with pytest.raises(AuthError):
        await complete_chat(REQUEST, make_config(fake))
    assert len(fake.requests) == 1


# --- HTTP errors ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error_type"),
    [
        (401, AuthError),
        (403, AuthError),
        (404, NotFoundError),
        (400, BadRequest),
        (422, BadRequest),
    ],
)
async def test_client_errors_are_not_retried(
    fake: FakeUpstream, status: int, error_type: type[UpstreamError]
) -> None:
    fake.scenario = Scenario(status=status)
    events, error = await collect_until_error(make_config(fake))
    assert type(error) is error_type
    assert events == []
    assert len(fake.requests) == 1
    assert_safe_for_people(error, fake)


async def test_missing_key_is_rejected_by_the_fake(fake: FakeUpstream) -> None:
    config = UpstreamConfig(base_url=fake.base_url, api_key="")
    with pytest.raises(AuthError):
        await collect(config)
    assert "authorization" not in fake.headers[0]


async def test_key_with_illegal_characters_is_never_logged(
    fake: FakeUpstream, caplog: pytest.LogCaptureFixture
) -> None:
    config = UpstreamConfig(base_url=fake.base_url, api_key="sk-bad\nkey-value-1234")
    with pytest.raises(UpstreamError) as caught:
        await collect(config)
    assert not caught.value.retryable
    assert "key-value-1234" not in caught.value.detail
    assert "key-value-1234" not in caplog.text


async def test_429_with_retry_after_is_retried(fake: FakeUpstream) -> None:
    fake.enqueue(Scenario(status=429, retry_after="0.2"))
    started = time.monotonic()
    events = await collect(make_config(fake))
    assert time.monotonic() - started >= 0.2
    assert Finish("stop") in events
    assert len(fake.requests) == 2


async def test_429_with_long_retry_after_fails_at_once(fake: FakeUpstream) -> None:
    fake.scenario = Scenario(status=429, retry_after="120")
    started = time.monotonic()
    _, error = await collect_until_error(make_config(fake, retry_after_max=5))
    assert isinstance(error, RateLimited)
    assert error.retry_after == 120
    assert time.monotonic() - started < 1
    assert len(fake.requests) == 1
    assert "rate-limiting" in error.user_message


async def test_429_http_date_retry_after_is_understood(fake: FakeUpstream) -> None:
    fake.scenario = Scenario(status=429, retry_after="Wed, 21 Oct 2099 07:28:00 GMT")
    _, error = await collect_until_error(make_config(fake))
    assert isinstance(error, RateLimited)
    assert error.retry_after is not None and error.retry_after > 1000


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (
            429,
            '{"error": {"message": "Exceeded your current quota", "code": "insufficient_quota"}}',
        ),
        (429, '{"error": {"code": "1113", "message": "余额不足或无可用资源包,请充值。"}}'),
        (402, "Insufficient balance"),
    ],
)
async def test_quota_exhausted_is_not_retried(fake: FakeUpstream, status: int, body: str) -> None:
    fake.scenario = Scenario(status=status, error_body=body, retry_after="0")
    _, error = await collect_until_error(make_config(fake))
    assert isinstance(error, QuotaExhausted)
    assert error.code == "upstream_quota"
    assert len(fake.requests) == 1
    assert_safe_for_people(error, fake)


@pytest.mark.parametrize("status", [500, 503, 529])
async def test_server_errors_are_retried_with_backoff(fake: FakeUpstream, status: int) -> None:
    fake.enqueue(Scenario(status=status), Scenario(status=status))
    events = await collect(make_config(fake))
    assert Finish("stop") in events
    assert len(fake.requests) == 3


async def test_server_errors_forever_give_up_after_max_retries(fake: FakeUpstream) -> None:
    fake.scenario = Scenario(status=500)
    _, error = await collect_until_error(make_config(fake, max_retries=3))
    assert isinstance(error, Overloaded)
    assert len(fake.requests) == 4
    assert "overloaded" in error.user_message
    assert_safe_for_people(error, fake)


async def test_closed_port_is_unreachable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = UpstreamConfig(
        base_url=f"http://127.0.0.1:{port}/v1", api_key=API_KEY, max_retries=1, backoff_base=0.01
    )
    with pytest.raises(Unreachable) as caught:
        await collect(config)
    assert "127.0.0.1" not in caught.value.user_message
    await close_clients()


# --- failures mid-stream ------------------------------------------------------------


async def test_cut_mid_stream_raises_after_the_partial_reply_without_retry(
    fake: FakeUpstream,
) -> None:
    fake.scenario = Scenario(cut_after=5)
    events, error = await collect_until_error(make_config(fake))
    assert isinstance(error, ProtocolError)
    assert len([e for e in events if isinstance(e, ContentDelta)]) == 5
    assert text_of(events, ContentDelta) == "".join(content_tokens(fake.scenario)[:5])
    assert len(fake.requests) == 1


async def test_stall_trips_the_watchdog(fake: FakeUpstream) -> None:
    fake.scenario = Scenario(stall_after=3)
    started = time.monotonic()
    events, error = await collect_until_error(make_config(fake, chunk_timeout=0.5))
    assert isinstance(error, UpstreamTimeout)
    assert 0.4 < time.monotonic() - started < 2
    assert len([e for e in events if isinstance(e, ContentDelta)]) == 3
    assert "stopped sending data" in error.user_message
    assert len(fake.requests) == 1


async def test_keepalive_comments_do_not_feed_the_watchdog(fake: FakeUpstream) -> None:
    fake.scenario = Scenario(stall_after=2, keepalive_every=0.1)
    started = time.monotonic()
    _, error = await collect_until_error(make_config(fake, chunk_timeout=0.5))
    assert isinstance(error, UpstreamTimeout)
    assert time.monotonic() - started < 2


async def test_silence_before_the_first_token_trips_the_watchdog_without_retry(
    fake: FakeUpstream,
) -> None:
    fake.scenario = Scenario(first_delay=5, keepalive_every=0.1)
    events, error = await collect_until_error(make_config(fake, chunk_timeout=0.5))
    assert isinstance(error, UpstreamTimeout)
    assert events == []
    assert len(fake.requests) == 1


async def test_a_server_that_never_answers_trips_the_watchdog() -> None:
    async def accept_and_ignore(reader: asyncio.StreamReader, _: asyncio.StreamWriter) -> None:
        await reader.read()

    server = await asyncio.start_server(accept_and_ignore, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    config = UpstreamConfig(
        base_url=f"http://127.0.0.1:{port}/v1", api_key=API_KEY, chunk_timeout=0.3
    )
    started = time.monotonic()
    with pytest.raises(UpstreamTimeout):
        await collect(config)
    assert time.monotonic() - started < 2
    server.close()
    await close_clients()


async def test_overall_deadline(fake: FakeUpstream) -> None:
    fake.scenario = Scenario(tokens=100, delay=0.05)
    _, error = await collect_until_error(make_config(fake, chunk_timeout=1, deadline=0.5))
    assert isinstance(error, UpstreamTimeout)
    assert "longer than the time allowed" in error.user_message


async def test_malformed_chunk_raises_protocol_error(fake: FakeUpstream) -> None:
    fake.scenario = Scenario(malformed_after=2)
    events, error = await collect_until_error(make_config(fake))
    assert isinstance(error, ProtocolError)
    assert len([e for e in events if isinstance(e, ContentDelta)]) == 2
    assert len(fake.requests) == 1


async def test_error_payload_mid_stream_raises_stream_error(fake: FakeUpstream) -> None:
    fake.scenario = Scenario(error_after=4)
    events, error = await collect_until_error(make_config(fake))
    assert isinstance(error, StreamError)
    assert "The model backend failed." in error.user_message
    assert len([e for e in events if isinstance(e, ContentDelta)]) == 4


# --- cancellation and load ---------------------------------------------------------


async def test_cancelling_the_consumer_closes_the_connection(fake: FakeUpstream) -> None:
    fake.scenario = Scenario(tokens=1000, delay=0.02)
    received: list[Event] = []

    async def consume() -> None:
        async for event in stream_chat(REQUEST, make_config(fake)):
            received.append(event)

    task = asyncio.create_task(consume())
    await wait_for(lambda: any(isinstance(e, ContentDelta) for e in received))
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await wait_for(lambda: fake.disconnects == 1)
    assert fake.active_streams == 0


async def test_aclose_closes_the_connection(fake: FakeUpstream) -> None:
    fake.scenario = Scenario(tokens=1000, delay=0.02)
    stream = stream_chat(REQUEST, make_config(fake))
    async for event in stream:
        if isinstance(event, ContentDelta):
            break
    await stream.aclose()
    await wait_for(lambda: fake.disconnects == 1)


async def test_cancel_during_a_stall_closes_the_connection(fake: FakeUpstream) -> None:
    fake.scenario = Scenario(stall_after=0, reasoning_tokens=0)
    task = asyncio.create_task(collect(make_config(fake, chunk_timeout=30)))
    await wait_for(lambda: fake.active_streams == 1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await wait_for(lambda: fake.disconnects == 1)


async def test_two_bursts_of_200_concurrent_streams(fake: FakeUpstream) -> None:
    fake.scenario = Scenario(tokens=20, reasoning_tokens=2, delay=0.005)
    config = make_config(fake, chunk_timeout=10, deadline=30)
    expected = "".join(content_tokens(fake.scenario))
    for _ in range(2):
        results = await asyncio.gather(*(collect(config) for _ in range(200)))
        assert all(text_of(events, ContentDelta) == expected for events in results)
        assert all(isinstance(events[-1], Usage) for events in results)
    assert len(fake.requests) == 400
