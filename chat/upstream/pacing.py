"""Paced reads: an httpx transport whose sockets can be left unread for a while.

A streamed reply comes a token per HTTP chunk, some 20 ms apart, and every
network read costs a trip through the event loop, httpcore and h11. After a
read, `PacedStream.hold(until)` stops reading that socket until the loop's
time `until`: what arrives meanwhile waits in the kernel and comes up in one
read, a few tokens at a time. The first read never waits, nor one after a
quiet spell longer than the hold.

The parts are httpx's and httpcore's public extension points: an httpcore
network backend on plain asyncio (`PacedBackend`), under an
`httpcore.AsyncConnectionPool`, behind an `httpx.AsyncBaseTransport`
(`PacedTransport`). It carries no proxy: `client.get_client` uses it only
when the environment names none.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, cast

import httpcore
import httpx

# Stop reading from the socket when this much is buffered and unread.
HIGH_WATER = 1 << 20


class _Buffer(asyncio.Protocol):
    """What a socket delivered and nobody has read yet; the socket paused when told."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.data = bytearray()
        self.eof = False
        self.error: BaseException | None = None
        self._reader: asyncio.Future[None] | None = None
        self._drained: asyncio.Future[None] | None = None
        self._paused = False
        self._held: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports have asyncio.Transport's methods, not its class.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.data += data
        if len(self.data) > HIGH_WATER and not self._paused:
            self._pause()
        self._wake_reader()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake_reader()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if self._held is not None:
            self._held.cancel()
            self._held = None
        self.eof = True
        self.error = exc
        self._wake_reader()
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    def pause_writing(self) -> None:
        self._drained = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)
        self._drained = None

    async def wait_readable(self) -> None:
        self._reader = asyncio.get_running_loop().create_future()
        try:
            await self._reader
        finally:
            self._reader = None

    async def wait_drained(self) -> None:
        if self._drained is not None:
            await asyncio.shield(self._drained)

    def take(self, max_bytes: int) -> bytes:
        chunk = bytes(self.data[:max_bytes])
        del self.data[:max_bytes]
        if self._paused and self._held is None and len(self.data) < HIGH_WATER // 2:
            self._resume()
        return chunk

    def hold(self, until: float) -> None:
        """Read nothing more from the socket until the loop's time `until`."""
        if self._held is not None or self.eof or self.transport is None:
            return
        self._held = asyncio.get_running_loop().call_at(until, self.release)
        if not self._paused:
            self._pause()

    def release(self) -> None:
        if self._held is None:
            return
        self._held.cancel()
        self._held = None
        if self._paused and len(self.data) <= HIGH_WATER:
            self._resume()

    def _pause(self) -> None:
        assert self.transport is not None
        if not self.transport.is_closing():
            self._paused = True
            self.transport.pause_reading()

    def _resume(self) -> None:
        assert self.transport is not None
        self._paused = False
        if not self.transport.is_closing():
            self.transport.resume_reading()

    def _wake_reader(self) -> None:
        if self._reader is not None and not self._reader.done():
            self._reader.set_result(None)


class PacedStream(httpcore.AsyncNetworkStream):
    """A connection on an asyncio transport; a read of data already here costs no loop turn."""

    def __init__(self, transport: asyncio.Transport, protocol: _Buffer) -> None:
        self._transport = transport
        self._protocol = protocol

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        protocol = self._protocol
        if not protocol.data and not protocol.eof:
            if timeout is None:  # as the upstream client reads: its own watchdog times it
                await protocol.wait_readable()
            else:
                try:
                    async with asyncio.timeout(timeout):
                        await protocol.wait_readable()
                except TimeoutError:
                    raise httpcore.ReadTimeout("timed out reading from upstream") from None
        if protocol.data:
            return protocol.take(max_bytes)
        if protocol.error is not None:
            raise httpcore.ReadError(str(protocol.error)) from protocol.error
        return b""

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        # A request going out on a kept-alive connection: its reply is read at once.
        self._protocol.release()
        if not buffer:
            return
        if self._transport.is_closing():
            raise httpcore.WriteError("connection closed")
        self._transport.write(buffer)
        try:
            async with asyncio.timeout(timeout):
                await self._protocol.wait_drained()
        except TimeoutError:
            raise httpcore.WriteTimeout("timed out writing to upstream") from None

    async def aclose(self) -> None:
        self._transport.close()

    def hold(self, until: float) -> None:
        """Leave what arrives in the kernel until the loop's time `until`, then read it at once."""
        self._protocol.hold(until)

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                transport = await loop.start_tls(
                    self._transport, self._protocol, ssl_context, server_hostname=server_hostname
                )
        except TimeoutError:
            self._transport.close()
            raise httpcore.ConnectTimeout("timed out in the TLS handshake") from None
        except (OSError, ssl.SSLError) as exc:
            self._transport.close()
            raise httpcore.ConnectError(str(exc)) from exc
        assert transport is not None
        self._protocol.transport = transport
        return PacedStream(transport, self._protocol)

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":
            # An idle kept-alive connection with anything to read was closed by the
            # server (the pool drops it): what the protocol was handed says so.
            return bool(self._protocol.data) or self._protocol.eof
        name = {"client_addr": "sockname", "server_addr": "peername"}.get(info, info)
        return self._transport.get_extra_info(name)


class PacedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend on plain asyncio, its streams `PacedStream`s."""

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        local_addr = (local_address, 0) if local_address else None
        try:
            async with asyncio.timeout(timeout):
                transport, protocol = await loop.create_connection(
                    _Buffer, host, port, local_addr=local_addr
                )
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"timed out connecting to {host}:{port}") from None
        except OSError as exc:
            raise httpcore.ConnectError(str(exc)) from exc
        sock = transport.get_extra_info("socket")
        for option in socket_options or ():
            sock.setsockopt(*option)
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return PacedStream(transport, protocol)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


# --- the httpx transport ----------------------------------------------------------

# httpcore's errors as httpx's, the more specific first.
_ERRORS: tuple[tuple[type[Exception], type[httpx.HTTPError]], ...] = (
    (httpcore.ConnectTimeout, httpx.ConnectTimeout),
    (httpcore.ReadTimeout, httpx.ReadTimeout),
    (httpcore.WriteTimeout, httpx.WriteTimeout),
    (httpcore.PoolTimeout, httpx.PoolTimeout),
    (httpcore.TimeoutException, httpx.TimeoutException),
    (httpcore.ConnectError, httpx.ConnectError),
    (httpcore.ReadError, httpx.ReadError),
    (httpcore.WriteError, httpx.WriteError),
    (httpcore.NetworkError, httpx.NetworkError),
    (httpcore.ProxyError, httpx.ProxyError),
    (httpcore.UnsupportedProtocol, httpx.UnsupportedProtocol),
    (httpcore.LocalProtocolError, httpx.LocalProtocolError),
    (httpcore.RemoteProtocolError, httpx.RemoteProtocolError),
    (httpcore.ProtocolError, httpx.ProtocolError),
)


@contextmanager
def _as_httpx_errors() -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        for core_type, httpx_type in _ERRORS:
            if isinstance(exc, core_type):
                raise httpx_type(str(exc)) from exc
        raise


class _ResponseStream(httpx.AsyncByteStream):
    def __init__(self, stream: AsyncIterable[bytes]) -> None:
        self._stream = stream

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _as_httpx_errors():
            async for part in self._stream:
                yield part

    async def aclose(self) -> None:
        aclose = getattr(self._stream, "aclose", None)
        if aclose is not None:
            with _as_httpx_errors():
                await aclose()


class PacedTransport(httpx.AsyncBaseTransport):
    """Direct connections (no proxy) through `PacedBackend`: httpx's default
    transport's work, on a pool whose streams can be held."""

    def __init__(self, limits: httpx.Limits, ssl_context: ssl.SSLContext | None = None) -> None:
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context or httpx.create_ssl_context(trust_env=True),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=PacedBackend(),
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        assert isinstance(request.stream, httpx.AsyncByteStream)
        core_request = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=request.url.raw_scheme,
                host=request.url.raw_host,
                port=request.url.port,
                target=request.url.raw_path,
            ),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        with _as_httpx_errors():
            response = await self._pool.handle_async_request(core_request)
        assert isinstance(response.stream, AsyncIterable)
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_ResponseStream(response.stream),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self._pool.aclose()
