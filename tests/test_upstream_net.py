"""The upstream client's asyncio network backend: TLS, flow control, keep-alive."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trustme

from chat.fake_upstream import FakeUpstream, Scenario, content_tokens
from chat.upstream import ContentDelta, Finish, Unreachable, close_clients
from chat.upstream_net import HIGH_WATER, AsyncioBackend
from tests.test_upstream_client import collect, make_config, text_of


@pytest.fixture
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
async def tls_fake(ca: trustme.CA) -> AsyncIterator[FakeUpstream]:
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    fake = FakeUpstream()
    await fake.start(tls=server_context)
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


async def test_a_burst_larger_than_the_buffer_arrives_whole_and_in_order() -> None:
    """The server writes 3 MB at once to a reader that isn't reading: the
    backend stops reading at its high-water mark and resumes as it's read."""
    payload = bytes(range(256)) * (3 * HIGH_WATER // 256)

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(payload)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    stream = await AsyncioBackend().connect_tcp("127.0.0.1", port, timeout=5)
    await asyncio.sleep(0.3)  # let the server fill the buffer
    assert HIGH_WATER <= len(stream._protocol.data) < HIGH_WATER + (1 << 18)
    received = bytearray()
    while chunk := await stream.read(65536, timeout=5):
        received += chunk
    await stream.aclose()
    server.close()

    assert bytes(received) == payload


async def test_a_keep_alive_connection_the_server_closed_is_not_reused() -> None:
    """An idle connection that is readable has been closed by the server (or
    sent junk): the pool must not send on it (chat.upstream_http)."""
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
