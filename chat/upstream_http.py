"""glmweb's own HTTP/1.1 client for the upstream: a POST, its response, a pool.

httpx hands a streamed body over one HTTP chunk at a time, and each chunk goes
through h11's state machine, httpcore's and httpx's iterators and their
exception wrappers. Providers send one chunk per token, so at 200 streams that
machinery ran 10,000 times a second and was most of the relay's CPU
(`python -m bench.upstream_read`). Here h11 writes the request and reads the
response head; the body is unframed here, and one read returns all the text
that has arrived, however many chunks it came in. Idle connections are kept
alive and reused; the sockets are chat.upstream_net's. The pool has no
per-request cost that grows with its size (httpcore 1.0.9's scans every pooled
connection for each one, on every request: see bench/results).

This module speaks HTTP only: chat.upstream turns its errors into messages.
"""

from __future__ import annotations

import asyncio
import ssl
import time
import urllib.parse
from dataclasses import dataclass

import h11
import httpcore
import httpx

from chat.upstream_net import AsyncioBackend, AsyncioStream

READ_BYTES = 1 << 18
MAX_HEAD_BYTES = 64 * 1024
MAX_CHUNK_LINE = 1024
MAX_TRAILER_BYTES = 16 * 1024
WRITE_TIMEOUT = 30.0
POOL_TIMEOUT = 30.0


class HTTPError(Exception):
    """The request failed below HTTP semantics: connecting, sending, or framing."""


class ConnectFailed(HTTPError):
    pass


class ConnectTimedOut(HTTPError):
    pass


class PoolFull(HTTPError):
    pass


class ConnectionBroken(HTTPError):
    """The connection failed or closed before the response was complete."""


class Malformed(HTTPError):
    """The response is not valid HTTP/1.1."""


@dataclass(frozen=True)
class Origin:
    scheme: str
    host: str
    port: int

    @classmethod
    def of(cls, url: urllib.parse.SplitResult) -> Origin:
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ConnectFailed(f"not an http(s) URL: {url.scheme}://…")
        return cls(url.scheme, url.hostname, url.port or _default_port(url.scheme))

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == _default_port(self.scheme) else f"{host}:{self.port}"


def _default_port(scheme: str) -> int:
    return 443 if scheme == "https" else 80


class Pool:
    """Connections to the upstream: at most `max_connections` in use, idle ones kept a while."""

    def __init__(
        self,
        ssl_context: ssl.SSLContext,
        *,
        max_connections: int,
        keepalive: int,
        keepalive_expiry: float,
        connect_timeout: float,
    ) -> None:
        self._ssl_context = ssl_context
        self._slots = asyncio.Semaphore(max_connections)
        self._keepalive = keepalive
        self._expiry = keepalive_expiry
        self._connect_timeout = connect_timeout
        self._idle: dict[Origin, list[tuple[AsyncioStream, float]]] = {}
        self._backend = AsyncioBackend()
        self.closed = False

    async def post(self, url: str, headers: list[tuple[str, str]], body: bytes) -> Response:
        """Send a POST and read the response head; the body is read from the response."""
        parts = urllib.parse.urlsplit(url)
        target = parts._replace(scheme="", netloc="", fragment="").geturl()
        request = Request(Origin.of(parts), target or "/", headers, body)
        try:
            async with asyncio.timeout(POOL_TIMEOUT):
                await self._slots.acquire()
        except TimeoutError:
            raise PoolFull("no free upstream connection") from None
        try:
            return await self._send(request)
        except BaseException:
            self._slots.release()
            raise

    async def _send(self, request: Request) -> Response:
        stream = self._take_idle(request.origin)
        if stream is not None:
            try:
                return await _exchange(self, stream, request)
            except ConnectionBroken:
                # The server closed the idle connection as we sent on it: a new one.
                stream.close_now()
            except BaseException:
                stream.close_now()
                raise
        stream = await self._connect(request.origin)
        try:
            return await _exchange(self, stream, request)
        except BaseException:
            stream.close_now()
            raise

    def _take_idle(self, origin: Origin) -> AsyncioStream | None:
        idle = self._idle.get(origin, [])
        now = time.monotonic()
        while idle:
            stream, since = idle.pop()
            # Readable while idle means the server closed it (or sent junk).
            if now - since < self._expiry and not stream.get_extra_info("is_readable"):
                return stream
            stream.close_now()
        return None

    async def _connect(self, origin: Origin) -> AsyncioStream:
        try:
            stream = await self._backend.connect_tcp(
                origin.host, origin.port, timeout=self._connect_timeout
            )
            if origin.scheme == "https":
                stream = await stream.start_tls(
                    self._ssl_context, origin.host, timeout=self._connect_timeout
                )
        except httpcore.ConnectTimeout as exc:
            raise ConnectTimedOut(str(exc)) from exc
        except httpcore.ConnectError as exc:
            raise ConnectFailed(str(exc)) from exc
        return stream  # type: ignore[return-value]

    def release(self, origin: Origin, stream: AsyncioStream, reusable: bool) -> None:
        self._slots.release()
        idle = self._idle.setdefault(origin, [])
        if reusable and not self.closed and len(idle) < self._keepalive:
            idle.append((stream, time.monotonic()))
        else:
            stream.close_now()

    async def aclose(self) -> None:
        self.closed = True
        for idle in self._idle.values():
            for stream, _ in idle:
                stream.close_now()
        self._idle.clear()


@dataclass(frozen=True)
class Request:
    origin: Origin
    target: str
    headers: list[tuple[str, str]]
    body: bytes


async def _exchange(pool: Pool, stream: AsyncioStream, request: Request) -> Response:
    # h11 refuses a response head larger than MAX_HEAD_BYTES.
    connection = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD_BYTES)
    head = [
        ("Host", request.origin.host_header),
        ("Content-Type", "application/json"),
        ("Content-Length", str(len(request.body))),
        # The body is unframed here, never decompressed.
        ("Accept-Encoding", "identity"),
        *request.headers,
    ]
    try:
        data = connection.send(h11.Request(method="POST", target=request.target, headers=head))
        data += connection.send(h11.Data(data=request.body))  # type: ignore[operator]
        data += connection.send(h11.EndOfMessage())  # type: ignore[operator]
    except h11.LocalProtocolError as exc:
        raise HTTPError(f"request not sendable: {exc}") from None
    try:
        await stream.write(data, timeout=WRITE_TIMEOUT)  # type: ignore[arg-type]
    except (httpcore.WriteError, httpcore.WriteTimeout) as exc:
        raise ConnectionBroken(str(exc)) from exc
    head_event = await _response_head(connection, stream)
    leftover, closed = connection.trailing_data
    return Response(pool, request.origin, stream, head_event, leftover, closed)


async def _response_head(connection: h11.Connection, stream: AsyncioStream) -> h11.Response:
    while True:
        try:
            event = connection.next_event()
        except h11.RemoteProtocolError as exc:
            raise Malformed(f"bad response head: {exc}") from None
        if event is h11.NEED_DATA:
            data = await _read(stream)
            if not data:
                raise ConnectionBroken("the server closed the connection before answering")
            connection.receive_data(data)
        elif isinstance(event, h11.Response):
            return event
        # Otherwise an informational (1xx) response: the real one follows.


async def _read(stream: AsyncioStream, deadline: float | None = None) -> bytes:
    """What has arrived, waiting for it at most until the loop's time `deadline`."""
    timeout = None if deadline is None else deadline - asyncio.get_running_loop().time()
    try:
        return await stream.read(READ_BYTES, timeout)
    except httpcore.ReadTimeout:
        raise TimeoutError from None
    except httpcore.ReadError as exc:
        raise ConnectionBroken(str(exc)) from exc


class Response:
    """A response whose head has arrived; `read_some` gives the body as it comes."""

    def __init__(
        self,
        pool: Pool,
        origin: Origin,
        stream: AsyncioStream,
        head: h11.Response,
        leftover: bytes,
        closed: bool,
    ) -> None:
        self.status_code = head.status_code
        self.headers = httpx.Headers([(k.decode(), v.decode("latin-1")) for k, v in head.headers])
        self._pool, self._origin, self._stream = pool, origin, stream
        self._raw = bytearray(leftover)
        self._eof = closed
        self._released = False
        keep_alive = head.http_version == b"1.1" and not _says_close(self.headers)
        if self.status_code in (204, 304):
            self._body: _Body = _Length(0)
        elif "chunked" in self.headers.get("transfer-encoding", "").lower():
            self._body = _Chunked()
        elif (length := self.headers.get("content-length")) is not None:
            try:
                self._body = _Length(int(length))
            except ValueError:
                raise Malformed(f"bad Content-Length {length[:20]!r}") from None
        else:
            self._body, keep_alive = _UntilClose(), False
        self._keep_alive = keep_alive

    async def read_some(self, deadline: float | None = None) -> bytes:
        """The body bytes that have arrived (waiting for at least one); b"" at the end.

        TimeoutError if none came by the loop's time `deadline`.
        """
        while True:
            if self._raw:
                data = self._body.take(self._raw)
                if data:
                    return data
            if self._body.done:
                await self.aclose()
                return b""
            if self._eof:
                if isinstance(self._body, _UntilClose):
                    self._body.done = True
                    continue
                raise ConnectionBroken("the connection closed before the body ended")
            data = await _read(self._stream, deadline)
            if data:
                self._raw += data
            else:
                self._eof = True

    def hold(self, until: float) -> None:
        """Read no more of the body until the loop's time `until` (see AsyncioStream.hold)."""
        if not self._body.done:
            self._stream.hold(until)

    async def read(self, limit: int = 1 << 20) -> bytes:
        """The whole body, or its first `limit` bytes and a bit."""
        body = bytearray()
        while len(body) <= limit and (data := await self.read_some()):
            body += data
        return bytes(body)

    async def aclose(self) -> None:
        if self._released:
            return
        self._released = True
        self._stream.release()
        # Reusable only if this response was read to its end and nothing followed.
        reusable = self._keep_alive and self._body.done and not self._raw and not self._eof
        self._pool.release(self._origin, self._stream, reusable)


def _says_close(headers: httpx.Headers) -> bool:
    return any(
        token.strip().lower() == "close"
        for value in headers.get_list("connection")
        for token in value.split(",")
    )


class _Body:
    done = False

    def take(self, raw: bytearray) -> bytes:
        """Consume what `raw` holds of the body; return its payload."""
        raise NotImplementedError


class _Length(_Body):
    def __init__(self, length: int) -> None:
        if length < 0:
            raise Malformed("negative Content-Length")
        self.left = length
        self.done = length == 0

    def take(self, raw: bytearray) -> bytes:
        data = bytes(raw[: self.left])
        del raw[: self.left]
        self.left -= len(data)
        self.done = self.left == 0
        return data


class _UntilClose(_Body):
    def take(self, raw: bytearray) -> bytes:
        data = bytes(raw)
        raw.clear()
        return data


class _Chunked(_Body):
    """Transfer-Encoding: chunked, decoded from whatever part of it has arrived."""

    def __init__(self) -> None:
        self.left = 0  # payload bytes still to come in the current chunk
        self.crlf_due = False  # the CRLF that ends a chunk's payload
        self.in_trailer = False
        self.trailer_bytes = 0

    def take(self, raw: bytearray) -> bytes:
        payload: list[bytes] = []
        pos = 0
        size = len(raw)
        while pos < size and not self.done:
            if self.left:
                end = min(size, pos + self.left)
                payload.append(raw[pos:end])
                self.left -= end - pos
                pos = end
                self.crlf_due = self.left == 0
            elif self.crlf_due:
                if size - pos < 2:
                    break
                if raw[pos : pos + 2] != b"\r\n":
                    raise Malformed("chunk not followed by CRLF")
                pos += 2
                self.crlf_due = False
            else:
                line_end = raw.find(b"\r\n", pos)
                if line_end < 0:
                    if size - pos > MAX_CHUNK_LINE:
                        raise Malformed("chunk size line too long")
                    break
                line = bytes(raw[pos:line_end])
                pos = line_end + 2
                if self.in_trailer:
                    self._trailer_line(line)
                    continue
                self._size_line(line)
                # Most chunks have come whole: take the payload and its CRLF at once.
                end = pos + self.left
                if self.left and raw.startswith(b"\r\n", end):
                    payload.append(raw[pos:end])
                    self.left, pos = 0, end + 2
        del raw[:pos]
        return b"".join(payload)

    def _size_line(self, line: bytes) -> None:
        text = line.split(b";", 1)[0].strip()
        if not text or len(text) > 16 or text.strip(b"0123456789abcdefABCDEF"):
            raise Malformed(f"bad chunk size {line[:20]!r}")
        self.left = int(text, 16)
        self.in_trailer = self.left == 0

    def _trailer_line(self, line: bytes) -> None:
        self.trailer_bytes += len(line) + 2
        if self.trailer_bytes > MAX_TRAILER_BYTES:
            raise Malformed("trailer too large")
        if not line:
            self.done = True
