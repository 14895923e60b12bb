"""The streamed request's own HTTP/1.1: body framing, batching, keep-alive, pool limits."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from chat import upstream_http
from chat.fake_upstream import FakeUpstream, Scenario, content_tokens
from chat.upstream import (
    ContentDelta,
    Finish,
    Overloaded,
    ProtocolError,
    UpstreamConfig,
    close_clients,
    stream_chat_batches,
)
from chat.upstream_http import Malformed, _Chunked
from tests.test_upstream_client import REQUEST, collect, make_config, text_of, wait_for


@pytest.fixture
async def fake() -> AsyncIterator[FakeUpstream]:
    async with FakeUpstream() as server:
        yield server
    await close_clients()


PAYLOADS = [b"data: one\n\n", b"", b"x" * 300, b"data: \xe2\x82\xac\n\n"]


def chunked(payloads: list[bytes]) -> bytes:
    body = b"".join(b"%x;ext=1\r\n%s\r\n" % (len(p), p) for p in payloads if p)
    return body + b"0\r\nX-Trailer: yes\r\n\r\n"


def decode(parts: list[bytes]) -> tuple[bytes, _Chunked, bytearray]:
    decoder, raw, payload = _Chunked(), bytearray(), b""
    for part in parts:
        raw += part
        payload += decoder.take(raw)
    return payload, decoder, raw


def test_a_chunked_body_decodes_the_same_however_it_is_split() -> None:
    body = chunked(PAYLOADS) + b"NEXT"  # the next response's first bytes stay unread
    for split in range(len(body) + 1):
        payload, decoder, rest = decode([body[:split], body[split:]])
        assert payload == b"".join(PAYLOADS)
        assert decoder.done
        assert rest == b"NEXT"
    payload, decoder, _ = decode([bytes([byte]) for byte in body])
    assert payload == b"".join(PAYLOADS) and decoder.done


@pytest.mark.parametrize(
    "body",
    [b"zz\r\n", b"3\r\nabcXY", b"-1\r\n", b"1" * 2000, b"0\r\n" + b"X-T: v\r\n" * 3000],
    ids=["bad size", "no CRLF after data", "negative size", "endless size line", "huge trailer"],
)
def test_broken_chunk_framing_is_malformed(body: bytes) -> None:
    with pytest.raises(Malformed):
        decode([body])


async def test_kept_alive_connections_are_reused(fake: FakeUpstream) -> None:
    fake.scenario = Scenario(tokens=5, reasoning_tokens=0)
    config = make_config(fake)
    for _ in range(3):
        assert Finish("stop") in await collect(config)
    assert fake.connections_opened == 1


async def test_what_arrived_together_is_read_as_one_batch(fake: FakeUpstream) -> None:
    fake.scenario = Scenario(tokens=30, reasoning_tokens=0)
    batches = [batch async for batch in stream_chat_batches(REQUEST, make_config(fake))]
    # Thirty chunks written back to back: a read or three, not thirty.
    assert len(batches) <= 3
    events = [event for batch in batches for event in batch]
    assert text_of(events, ContentDelta) == "".join(content_tokens(fake.scenario))


SSE_REPLY = (
    b'data: {"choices":[{"delta":{"content":"Hello"}}]}\n\n'
    b'data: {"choices":[{"delta":{"content":" there"},"finish_reason":"stop"}]}\n\n'
    b"data: [DONE]\n\n"
)


async def raw_server(
    answer: Callable[[asyncio.StreamWriter], Awaitable[None]],
) -> tuple[asyncio.Server, str]:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        await answer(writer)

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}/v1"


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
    config = upstream_config(url)
    try:
        events = await collect(config)
    finally:
        await close_clients()
        server.close()
    assert text_of(events, ContentDelta) == "Hello there"
    assert Finish("stop") in events


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


async def test_a_full_pool_answers_overloaded(
    fake: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(upstream_http, "POOL_TIMEOUT", 0.2)
    fake.scenario = Scenario(tokens=100, reasoning_tokens=0, delay=0.01)
    config = make_config(fake, max_connections=1, max_retries=0)
    first = asyncio.create_task(collect(config))
    await wait_for(lambda: fake.active_streams == 1)

    with pytest.raises(Overloaded):
        await collect(config)
    assert Finish("stop") in await first


def upstream_config(url: str) -> UpstreamConfig:
    return UpstreamConfig(base_url=url, api_key="k", max_retries=0, chunk_timeout=2, deadline=5)


async def test_with_a_read_interval_tokens_come_a_few_per_read(fake: FakeUpstream) -> None:
    fake.scenario = Scenario(tokens=30, reasoning_tokens=0, delay=0.01)
    config = make_config(fake, read_interval=0.1)

    batches = [batch async for batch in stream_chat_batches(REQUEST, config)]

    # 300 ms of tokens read every 100 ms: four reads or so, not thirty.
    assert len(batches) <= 6
    events = [event for batch in batches for event in batch]
    assert text_of(events, ContentDelta) == "".join(content_tokens(fake.scenario))
    assert Finish("stop") in events
