"""Paced reads (chat.upstream.pacing): once a reply flows, its connection is read at
most once per `read_interval`, tokens that came meanwhile in one read; the first
read never waits, nor one after a quiet spell; a proxy still takes httpx's own path."""

from __future__ import annotations

import asyncio
import itertools
import json
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest

from bench.fake_upstream import FakeUpstream, Scenario, content_tokens
from chat.upstream import (
    ContentDelta,
    Event,
    Finish,
    ProtocolError,
    Unreachable,
    UpstreamConfig,
    UpstreamTimeout,
    close_clients,
    get_client,
    stream_chat_batches,
)
from chat.upstream.pacing import HIGH_WATER, PacedBackend, PacedStream
from chat.upstream.watchdog import Watchdog
from tests.test_upstream_client import REQUEST, collect_until_error, make_config, text_of

Answer = Callable[[asyncio.StreamWriter], Awaitable[None]]


@pytest.fixture
async def fake() -> AsyncIterator[FakeUpstream]:
    async with FakeUpstream() as server:
        yield server
    await close_clients()


async def timed_batches(config: UpstreamConfig) -> list[tuple[float, list[Event]]]:
    """Each batch with the seconds since the request went out."""
    started = time.monotonic()
    return [
        (time.monotonic() - started, batch) async for batch in stream_chat_batches(REQUEST, config)
    ]


def all_events(batches: list[tuple[float, list[Event]]]) -> list[Event]:
    return [event for _, batch in batches for event in batch]


async def raw_server(answer: Answer) -> tuple[asyncio.Server, str]:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        await answer(writer)

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}/v1"


def sse_chunk(data: str) -> bytes:
    event = f"data: {data}\n\n".encode()
    return b"%x\r\n%s\r\n" % (len(event), event)


def token_chunk(text: str) -> bytes:
    return sse_chunk(json.dumps({"choices": [{"index": 0, "delta": {"content": text}}]}))


CHUNKED_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
)
FINISH = sse_chunk('{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}')
END = sse_chunk("[DONE]") + b"0\r\n\r\n"


# --- pacing ---------------------------------------------------------------------


async def test_tokens_faster_than_the_interval_come_several_to_a_read(fake: FakeUpstream) -> None:
    fake.scenario = Scenario(tokens=60, reasoning_tokens=0, delay=0.005)

    paced = await timed_batches(make_config(fake, read_interval=0.05))
    unpaced = await timed_batches(make_config(fake, read_interval=0))

    for batches in (paced, unpaced):
        assert text_of(all_events(batches), ContentDelta) == "".join(content_tokens(fake.scenario))
        assert Finish("stop") in all_events(batches)
    # 60 tokens 5 ms apart, about 0.3 s: about 7 reads paced, each a few tokens,
    # whose chunks httpx hands over one by one at once.
    reads = arrivals(paced)
    assert 4 <= len(reads) <= 12
    assert max(len(read) for read in reads) >= 5
    assert min(b[0] - a[-1] for a, b in itertools.pairwise(reads)) > 0.03


def arrivals(batches: list[tuple[float, list[Event]]]) -> list[list[float]]:
    """The batches' times, grouped where they came less than 10 ms apart."""
    groups: list[list[float]] = []
    for seconds, _ in batches:
        if groups and seconds - groups[-1][-1] < 0.01:
            groups[-1].append(seconds)
        else:
            groups.append([seconds])
    return groups


async def test_the_first_read_and_one_after_a_quiet_spell_never_wait() -> None:
    """Interval 1.5 s: the first token comes at once; the second, 1.8 s later,
    also at once (its hold had run out); the third, 0.1 s after it, waits for
    the interval (1.5 s after the second was read). The interval is wide so
    that a busy machine's delays (tenths of a second) can't pass for a hold."""

    async def answer(writer: asyncio.StreamWriter) -> None:
        writer.write(CHUNKED_HEAD + token_chunk("one"))
        await asyncio.sleep(1.8)
        writer.write(token_chunk("two"))
        await asyncio.sleep(0.1)
        writer.write(token_chunk("three") + FINISH + END)
        await writer.drain()

    server, url = await raw_server(answer)
    config = UpstreamConfig(base_url=url, api_key="k", chunk_timeout=5, read_interval=1.5)
    try:
        batches = await timed_batches(config)
    finally:
        await close_clients()
        server.close()

    at = {
        e.text: seconds for seconds, batch in batches for e in batch if isinstance(e, ContentDelta)
    }
    assert at["one"] < 0.75
    assert 1.75 < at["two"] < 2.55
    assert at["three"] - at["two"] > 1.3
    assert Finish("stop") in all_events(batches)


async def test_a_connection_left_held_serves_the_next_request_at_once() -> None:
    """A whole reply in one write: the hold after its first chunk outlives the
    reply, and the connection goes back to the pool held. Writing the next
    request ends the hold, so that reply's head isn't paced."""
    reply = CHUNKED_HEAD + token_chunk("one") + token_chunk("two") + FINISH + END
    connections = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        while head := await reader.readuntil(b"\r\n\r\n"):
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            await reader.readexactly(length)
            writer.write(reply)
            await writer.drain()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    config = UpstreamConfig(
        base_url=f"http://127.0.0.1:{port}/v1", api_key="k", chunk_timeout=5, read_interval=2.0
    )
    try:
        first = await timed_batches(config)
        second = await timed_batches(config)
    finally:
        await close_clients()
        server.close()

    assert text_of(all_events(first), ContentDelta) == "onetwo"
    assert text_of(all_events(second), ContentDelta) == "onetwo"
    assert first[-1][0] < 1.0  # a hold would make it 2 s
    assert second[-1][0] < 1.0
    assert connections == 1


async def test_the_watchdog_and_a_cut_work_on_a_paced_stream(fake: FakeUpstream) -> None:
    fake.scenario = Scenario(stall_after=3, delay=0.005)
    started = time.monotonic()
    events, error = await collect_until_error(
        make_config(fake, chunk_timeout=0.5, read_interval=0.05)
    )
    assert isinstance(error, UpstreamTimeout)
    assert 0.4 < time.monotonic() - started < 2
    assert len([e for e in events if isinstance(e, ContentDelta)]) == 3

    fake.scenario = Scenario(cut_after=5, delay=0.005)
    events, error = await collect_until_error(make_config(fake, read_interval=0.05))
    assert isinstance(error, ProtocolError)
    assert len([e for e in events if isinstance(e, ContentDelta)]) == 5


# --- the transport --------------------------------------------------------------


async def test_without_a_proxy_the_client_reads_through_paced_streams(
    fake: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    monkeypatch.setenv("NO_PROXY", "example.org")  # names no proxy
    config = make_config(fake)
    async with get_client(config).stream("POST", config.url, json={"messages": []}) as response:
        assert isinstance(response.extensions["network_stream"], PacedStream)
        await response.aread()


async def test_with_a_proxy_in_the_environment_the_client_is_httpxs_own(
    fake: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    """httpx reads proxies from the environment only with its own transport (the
    proxy tests, tests/test_upstream_proxy.py, show the reply going through)."""
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    config = make_config(fake)
    async with get_client(config).stream("POST", config.url, json={"messages": []}) as response:
        assert not isinstance(response.extensions["network_stream"], PacedStream)
        await response.aread()


async def test_connection_failures_are_httpx_errors_and_the_same_upstream_errors() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = UpstreamConfig(base_url=f"http://127.0.0.1:{port}/v1", api_key="k", max_retries=0)
    try:
        with pytest.raises(httpx.ConnectError):
            await get_client(config).post(config.url, json={})
        with pytest.raises(Unreachable) as caught:
            await collect_until_error_raw(config)
        assert "ConnectError" in caught.value.detail
    finally:
        await close_clients()

    async def hang_up(writer: asyncio.StreamWriter) -> None:
        writer.close()

    server, url = await raw_server(hang_up)
    try:
        with pytest.raises(Unreachable) as caught:
            await collect_until_error_raw(UpstreamConfig(base_url=url, api_key="k", max_retries=0))
        assert "RemoteProtocolError" in caught.value.detail
    finally:
        await close_clients()
        server.close()


async def collect_until_error_raw(config: UpstreamConfig) -> None:
    async for _ in stream_chat_batches(REQUEST, config):
        pass


async def test_a_burst_larger_than_the_buffer_arrives_whole_and_in_order() -> None:
    """The server writes 3 MB at once to a reader that isn't reading: the
    stream stops reading at its high-water mark and resumes as it's read."""
    payload = bytes(range(256)) * (3 * HIGH_WATER // 256)

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(payload)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    stream = await PacedBackend().connect_tcp("127.0.0.1", port, timeout=5)
    stream.hold(asyncio.get_running_loop().time() + 0.1)  # held, then resumed
    await asyncio.sleep(0.3)  # let the server fill the buffer
    received = bytearray()
    while chunk := await stream.read(65536, timeout=5):
        received += chunk
    await stream.aclose()
    server.close()

    assert bytes(received) == payload


# --- the watchdog ---------------------------------------------------------------


async def test_the_watchdog_fires_at_its_latest_time_only_while_waiting() -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    watchdog = Watchdog(started + 0.1)
    try:
        with watchdog:
            await asyncio.sleep(0.05)
        watchdog.at = loop.time() + 0.2  # moved later: the first timer sets itself again
        await asyncio.sleep(0.1)  # not waiting inside: nothing happens
        with pytest.raises(TimeoutError), watchdog:
            await asyncio.sleep(5)
        assert 0.2 < loop.time() - started < 4  # not the first timer (0.1), nor never (5)
    finally:
        watchdog.close()
    await asyncio.sleep(0)  # and the task isn't left cancelled


async def test_a_cancellation_from_outside_passes_through_the_watchdog() -> None:
    async def wait() -> None:
        watchdog = Watchdog(asyncio.get_running_loop().time() + 5)
        try:
            with watchdog:
                await asyncio.sleep(5)
        finally:
            watchdog.close()

    task = asyncio.create_task(wait())
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
