"""The upstream client's connections (httpx): keep-alive, pool limits, body framing,
TLS with a private CA, and what each way of failing below HTTP becomes."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
import trustme

from bench.fake_upstream import FakeUpstream, Scenario, content_tokens
from chat.upstream import (
    ContentDelta,
    Finish,
    Overloaded,
    ProtocolError,
    Unreachable,
    UpstreamConfig,
    UpstreamTimeout,
    close_clients,
    get_client,
    stream_chat_batches,
)
from tests.test_upstream_client import REQUEST, collect, make_config, text_of, wait_for


@pytest.fixture
async def fake() -> AsyncIterator[FakeUpstream]:
    async with FakeUpstream() as server:
        yield server
    await close_clients()


async def test_kept_alive_connections_are_reused(fake: FakeUpstream) -> None:
    fake.scenario = Scenario(tokens=5, reasoning_tokens=0)
    config = make_config(fake)
    for _ in range(3):
        assert Finish("stop") in await collect(config)
    assert fake.connections_opened == 1


async def test_one_client_per_event_loop_and_config_shape(fake: FakeUpstream) -> None:
    config = make_config(fake)
    assert get_client(config) is get_client(make_config(fake, deadline=99))
    assert get_client(config) is not get_client(make_config(fake, max_connections=7))
    client = get_client(config)
    await close_clients()
    assert client.is_closed
    assert get_client(config) is not client


async def test_a_keep_alive_connection_the_server_closed_is_not_reused() -> None:
    fake = FakeUpstream(Scenario(tokens=3, reasoning_tokens=0))
    await fake.start()
    config = make_config(fake, max_retries=0)
    try:
        await collect(config)
        for connection in list(fake._connections):  # the server hangs up on idle ones
            connection.cancel()
        await asyncio.sleep(0.1)

        events = await collect(config)

        assert Finish("stop") in events
        assert fake.connections_opened == 2
    finally:
        await close_clients()
        await fake.stop()


async def test_a_full_pool_answers_overloaded(fake: FakeUpstream) -> None:
    fake.scenario = Scenario(tokens=100, reasoning_tokens=0, delay=0.01)
    config = make_config(fake, max_connections=1, max_retries=0, pool_timeout=0.2)
    first = asyncio.create_task(collect(config))
    await wait_for(lambda: fake.active_streams == 1)

    with pytest.raises(Overloaded):
        await collect(config)
    assert Finish("stop") in await first


# --- bodies framed every way, and not HTTP at all ------------------------------------

SSE_REPLY = (
    b'data: {"choices":[{"delta":{"content":"Hello"}}]}\n\n'
    b'data: {"choices":[{"delta":{"content":" there"},"finish_reason":"stop"}]}\n\n'
    b"data: [DONE]\n\n"
)


async def raw_server(
    answer: Callable[[asyncio.StreamWriter], Awaitable[None]],
    tls: ssl.SSLContext | None = None,
) -> tuple[asyncio.Server, str]:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        await answer(writer)

    server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=tls)
    port = server.sockets[0].getsockname()[1]
    return server, f"{'https' if tls else 'http'}://127.0.0.1:{port}/v1"


def upstream_config(url: str, **overrides: float) -> UpstreamConfig:
    settings: dict[str, float] = {"max_retries": 0, "chunk_timeout": 2, "deadline": 5}
    return UpstreamConfig(base_url=url, api_key="k", **(settings | overrides))  # type: ignore[arg-type]


@pytest.mark.parametrize("framing", ["content-length", "until-close"])
async def test_a_body_framed_by_length_or_by_closing_is_read_whole(framing: str) -> None:
    async def answer(writer: asyncio.StreamWriter) -> None:
        head = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
        if framing == "content-length":
            head += b"Content-Length: %d\r\n" % len(SSE_REPLY)
        writer.write(head + b"\r\n" + SSE_REPLY)
        await writer.drain()
        if framing == "until-close":
            writer.close()

    server, url = await raw_server(answer)
    try:
        batches = [batch async for batch in stream_chat_batches(REQUEST, upstream_config(url))]
    finally:
        await close_clients()
        server.close()
    events = [event for batch in batches for event in batch]
    assert text_of(events, ContentDelta) == "Hello there"
    assert Finish("stop") in events
    # One write, one read: its events come as one batch.
    assert batches[0][:2] == [ContentDelta("Hello"), ContentDelta(" there")]


async def test_a_response_head_that_is_not_http_is_a_protocol_error() -> None:
    async def answer(writer: asyncio.StreamWriter) -> None:
        writer.write(b"SSH-2.0-OpenSSH_9.2\r\n\r\n")
        await writer.drain()
        writer.close()

    server, url = await raw_server(answer)
    try:
        with pytest.raises(ProtocolError):
            await collect(upstream_config(url))
    finally:
        await close_clients()
        server.close()


@pytest.mark.parametrize(
    "body", [b"zz\r\n", b"3\r\nabcXY"], ids=["bad chunk size", "no CRLF after data"]
)
async def test_broken_chunk_framing_is_a_protocol_error_and_not_retried(body: bytes) -> None:
    answers = 0

    async def answer(writer: asyncio.StreamWriter) -> None:
        nonlocal answers
        answers += 1
        head = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
        writer.write(head + b"Transfer-Encoding: chunked\r\n\r\n" + body)
        await writer.drain()
        writer.close()

    server, url = await raw_server(answer)
    try:
        with pytest.raises(ProtocolError):
            await collect(upstream_config(url, max_retries=2, backoff_base=0.01))
    finally:
        await close_clients()
        server.close()
    assert answers == 1


# --- TLS ----------------------------------------------------------------------------------


@pytest.fixture
def ca() -> trustme.CA:
    return trustme.CA()


def server_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    return context


@pytest.fixture
async def tls_fake(ca: trustme.CA) -> AsyncIterator[FakeUpstream]:
    fake = FakeUpstream()
    await fake.start(tls=server_context(ca))
    yield fake
    await close_clients()
    await fake.stop()


async def test_a_reply_streams_over_tls_from_a_private_ca(
    tls_fake: FakeUpstream, ca: trustme.CA, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "ca.pem"))
    tls_fake.scenario = Scenario(tokens=300, reasoning_tokens=0)

    events = await collect(make_config(tls_fake))

    assert tls_fake.base_url.startswith("https://")
    assert text_of(events, ContentDelta) == "".join(content_tokens(tls_fake.scenario))
    assert Finish("stop") in events


async def test_an_untrusted_certificate_is_refused_plainly(tls_fake: FakeUpstream) -> None:
    with pytest.raises(Unreachable) as caught:
        await collect(make_config(tls_fake, max_retries=0))

    assert "CERTIFICATE_VERIFY_FAILED" in caught.value.detail
    assert tls_fake.requests == []


async def test_a_handshake_that_never_finishes_is_a_connect_timeout_and_retried() -> None:
    accepted = 0

    async def accept_and_ignore(reader: asyncio.StreamReader, _: asyncio.StreamWriter) -> None:
        nonlocal accepted
        accepted += 1
        await reader.read()

    server = await asyncio.start_server(accept_and_ignore, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    config = upstream_config(
        f"https://127.0.0.1:{port}/v1", connect_timeout=0.3, max_retries=1, backoff_base=0.01
    )
    started = time.monotonic()
    try:
        with pytest.raises(UpstreamTimeout) as caught:
            await collect(config)
    finally:
        await close_clients()
        server.close()

    assert caught.value.retryable
    assert "did not answer in time" in caught.value.user_message
    assert accepted == 2
    assert time.monotonic() - started < 2
