"""The upstream client's sockets, on plain asyncio (used by chat.upstream_http).

A socket stays armed and what arrives is buffered, so a read of data already
there costs no system call and no loop turn, and returns everything that came
since the last read. `hold` leaves the socket unread for a while, so that a
streamed reply's tokens come up a few per read. (httpx's default network
backend, through anyio, re-arms the socket and yields to the loop on every
read: paid per token per stream.) The interface and errors are httpcore's
network backend's, which these began as.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Iterable
from typing import Any

import httpcore

# Stop reading from the socket when this much is buffered and unread.
HIGH_WATER = 1 << 20


class _Buffer(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.data = bytearray()
        self.eof = False
        self.error: BaseException | None = None
        self._reader: asyncio.Future[None] | None = None
        self._drained: asyncio.Future[None] | None = None
        self._paused = False
        # While held, what arrives waits in the kernel (see `hold`).
        self._held: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.data += data
        if len(self.data) > HIGH_WATER and not self._paused:
            self._paused = True
            self.transport.pause_reading()
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

    async def wait_readable(self, deadline: float | None = None) -> bool:
        """Wait for data or the end: False if the loop's time `deadline` came first."""
        loop = asyncio.get_running_loop()
        self._reader = reader = loop.create_future()
        # A timer on the future, not asyncio.timeout: no task to cancel and uncancel.
        timer = None if deadline is None else loop.call_at(deadline, _give_up, reader)
        try:
            return await reader
        finally:
            self._reader = None
            if timer is not None:
                timer.cancel()

    async def wait_drained(self) -> None:
        if self._drained is not None:
            await asyncio.shield(self._drained)

    def take(self, max_bytes: int) -> bytes:
        chunk = bytes(self.data[:max_bytes])
        del self.data[:max_bytes]
        if self._paused and self._held is None and len(self.data) < HIGH_WATER // 2:
            self._paused = False
            self.transport.resume_reading()
        return chunk

    def hold(self, until: float) -> None:
        """Read nothing from the socket until the loop's time `until`.

        What arrives meanwhile stays in the kernel and comes up in one read
        then: a streamed reply's tokens, a few at a time instead of one.
        """
        if self._held is not None or self.eof or self.transport is None:
            return
        self._held = asyncio.get_running_loop().call_at(until, self.release)
        if not self._paused:
            self._paused = True
            self.transport.pause_reading()

    def release(self) -> None:
        if self._held is not None:
            self._held.cancel()
            self._held = None
            if self._paused and len(self.data) <= HIGH_WATER and not self.transport.is_closing():
                self._paused = False
                self.transport.resume_reading()

    def _wake_reader(self) -> None:
        if self._reader is not None and not self._reader.done():
            self._reader.set_result(True)


def _give_up(reader: asyncio.Future[bool]) -> None:
    if not reader.done():
        reader.set_result(False)


class AsyncioStream(httpcore.AsyncNetworkStream):
    def __init__(self, transport: asyncio.Transport, protocol: _Buffer) -> None:
        self._transport = transport
        self._protocol = protocol

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        protocol = self._protocol
        if not protocol.data and not protocol.eof:
            deadline = None if timeout is None else asyncio.get_running_loop().time() + timeout
            if not await protocol.wait_readable(deadline):
                raise httpcore.ReadTimeout("timed out reading from upstream")
        if protocol.data:
            return protocol.take(max_bytes)
        if protocol.error is not None:
            raise httpcore.ReadError(str(protocol.error)) from protocol.error
        return b""

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
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
        self.close_now()

    def close_now(self) -> None:
        self._transport.close()

    def hold(self, until: float) -> None:
        self._protocol.hold(until)

    def release(self) -> None:
        self._protocol.release()

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
        except (OSError, ssl.SSLError, ConnectionError) as exc:
            self._transport.close()
            raise httpcore.ConnectError(str(exc)) from exc
        self._protocol.transport = transport
        return AsyncioStream(transport, self._protocol)

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":
            # An idle keep-alive connection with anything to read was closed by
            # the server (the pool drops it); no poll() needed, we already know.
            return bool(self._protocol.data) or self._protocol.eof
        name = {"client_addr": "sockname", "server_addr": "peername"}.get(info, info)
        return self._transport.get_extra_info(name)


class AsyncioBackend(httpcore.AsyncNetworkBackend):
    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[tuple[int, int, Any]] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                transport, protocol = await loop.create_connection(
                    _Buffer,
                    host,
                    port,
                    local_addr=(local_address, 0) if local_address else None,
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
        return AsyncioStream(transport, protocol)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[tuple[int, int, Any]] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        return await httpcore.AnyIOBackend().connect_unix_socket(path, timeout, socket_options)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
