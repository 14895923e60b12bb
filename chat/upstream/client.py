"""The upstream over HTTP: one `httpx.AsyncClient` per event loop, replies as typed events.

The client trusts the environment (`HTTPS_PROXY`, `NO_PROXY`, `SSL_CERT_FILE`,
`SSL_CERT_DIR`) and takes its timeouts and pool limits from the
`UpstreamConfig`. A streamed body is read as httpx hands it over, each read
parsed at once: `stream_chat_batches` yields the events of one read together.
With no proxy in the environment the client's transport is
`chat.upstream.pacing.PacedTransport`, and once a reply flows its connection
is read at most once per `UpstreamConfig.read_interval`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import urllib.request
import weakref
from collections.abc import AsyncGenerator, Callable
from contextlib import AsyncExitStack, aclosing
from typing import Any, cast

import httpx

from chat.upstream.errors import (
    CONNECT_TIMEOUT_MESSAGE,
    CUT_OFF_MESSAGE,
    DEADLINE_MESSAGE,
    OVERLOADED_MESSAGE,
    UNSENDABLE_MESSAGE,
    Overloaded,
    ProtocolError,
    Unreachable,
    UpstreamError,
    UpstreamTimeout,
    error_from_response,
)
from chat.upstream.events import ChatRequest, Event, UpstreamConfig, Usage
from chat.upstream.pacing import PacedTransport
from chat.upstream.redaction import redact
from chat.upstream.retries import Retries
from chat.upstream.sse import SSEParser, completion_answer, completion_events
from chat.upstream.watchdog import Watchdog

logger = logging.getLogger("chat.upstream")

WRITE_TIMEOUT = 30.0
# An error body, or a whole completion, is read up to about this many bytes.
MAX_BODY_BYTES = 1 << 20

# A request that failed below HTTP semantics: connecting, sending, framing, or
# a header value that can't be sent (a key that isn't ASCII).
_REQUEST_FAILURES = (httpx.HTTPError, httpx.InvalidURL, UnicodeEncodeError)


# --- the client ---------------------------------------------------------------

_Shape = tuple[float, float, int, int, float]
_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[_Shape, httpx.AsyncClient]] = (
    weakref.WeakKeyDictionary()
)


def get_client(config: UpstreamConfig) -> httpx.AsyncClient:
    """The running event loop's client for the config's timeouts and pool limits."""
    shape = (
        config.connect_timeout,
        config.pool_timeout,
        config.max_connections,
        config.keepalive_connections,
        config.keepalive_expiry,
    )
    per_loop = _clients.setdefault(asyncio.get_running_loop(), {})
    client = per_loop.get(shape)
    if client is None or client.is_closed:
        limits = httpx.Limits(
            max_connections=config.max_connections,
            max_keepalive_connections=config.keepalive_connections,
            keepalive_expiry=config.keepalive_expiry,
        )
        client = per_loop[shape] = httpx.AsyncClient(
            trust_env=True,
            # No read timeout here: reads are timed by the chunk watchdog (which
            # keep-alive comments don't feed) and by the overall deadline.
            timeout=httpx.Timeout(
                None, connect=config.connect_timeout, write=WRITE_TIMEOUT, pool=config.pool_timeout
            ),
            limits=limits,
            # httpx reads proxies from the environment only with its own transport:
            # the paced one (which connects directly) only when there are none.
            transport=None if _environment_names_a_proxy() else PacedTransport(limits),
        )
    return client


def _environment_names_a_proxy() -> bool:
    # What httpx reads too (urllib's *_PROXY variables); NO_PROXY alone names none.
    return any(scheme != "no" for scheme in urllib.request.getproxies())


async def close_clients() -> None:
    """Close the running loop's clients (call on shutdown and between tests)."""
    for client in _clients.pop(asyncio.get_running_loop(), {}).values():
        await client.aclose()


def _headers(config: UpstreamConfig, *, stream: bool) -> dict[str, str]:
    headers = {
        "Accept": "text/event-stream" if stream else "application/json",
        "Content-Type": "application/json",
    }
    if stream:  # read raw (`_body_parts`); a provider that encodes anyway is decoded
        headers["Accept-Encoding"] = "identity"
    key = config.api_key.strip()
    if key:  # with no key the upstream answers 401, which names the problem
        headers["Authorization"] = f"Bearer {key}"
    return headers


def _json_body(body: dict[str, Any]) -> bytes:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def _request_error(exc: Exception, key: str) -> UpstreamError:
    """The typed error for a request that failed before its response began."""
    # The message can quote a header value, so the key must be scrubbed.
    detail = redact(f"{type(exc).__name__}: {exc}", key)
    match exc:
        case httpx.ConnectTimeout():
            return UpstreamTimeout(CONNECT_TIMEOUT_MESSAGE, detail=detail, retryable=True)
        case httpx.PoolTimeout():
            return Overloaded(OVERLOADED_MESSAGE, detail=detail)
        case httpx.ReadTimeout():
            return UpstreamTimeout(detail=detail)
        case httpx.NetworkError() | httpx.WriteTimeout() | httpx.ProxyError():
            return Unreachable(detail=detail)
        case httpx.RemoteProtocolError() if _hung_up(exc):
            return Unreachable(detail=detail)
        case httpx.RemoteProtocolError() | httpx.DecodingError():
            return ProtocolError(detail=detail)
    return UpstreamError(UNSENDABLE_MESSAGE, detail=detail)


def _hung_up(exc: httpx.RemoteProtocolError) -> bool:
    # httpx has one type for "the server closed the connection" and "the server
    # sent something that isn't HTTP"; only its message (httpcore's and h11's)
    # tells them apart. Hanging up is worth a retry; nonsense isn't.
    text = str(exc)
    return "disconnected without sending" in text or "peer closed connection" in text


def _timeout_error(deadline_passed: bool, data_lines: int) -> UpstreamTimeout:
    if deadline_passed:
        return UpstreamTimeout(DEADLINE_MESSAGE, detail="overall deadline reached")
    # Not retried: another full watchdog period would leave the person waiting too long.
    return UpstreamTimeout(detail=f"chunk watchdog fired after {data_lines} data lines")


# --- a streamed reply ---------------------------------------------------------


async def stream_chat(request: ChatRequest, config: UpstreamConfig) -> AsyncGenerator[Event, None]:
    """Stream one reply as events; retries happen only before the first event."""
    async with aclosing(stream_chat_batches(request, config)) as batches:
        async for batch in batches:
            for event in batch:
                yield event


async def stream_chat_batches(
    request: ChatRequest, config: UpstreamConfig
) -> AsyncGenerator[list[Event], None]:
    """`stream_chat`, a list of events per read: what was read together comes together."""
    client = get_client(config)
    loop = asyncio.get_running_loop()
    deadline_at = loop.time() + config.deadline
    retries = Retries(config)
    while True:
        yielded = False
        try:
            async with aclosing(_stream_once(client, request, config, deadline_at)) as batches:
                async for batch in batches:
                    yielded = True
                    yield batch
            return
        except UpstreamError as exc:
            if yielded:
                logger.warning("upstream stream failed mid-reply: %s %s", exc.code, exc.detail)
                raise
            delay = retries.delay_after(exc, deadline_at - loop.time())
            if delay is None:
                raise
        await asyncio.sleep(delay)


async def _stream_once(
    client: httpx.AsyncClient, request: ChatRequest, config: UpstreamConfig, deadline_at: float
) -> AsyncGenerator[list[Event], None]:
    parser = SSEParser(config.api_key)
    try:
        async with AsyncExitStack() as stack:
            response = await _open_stream(client, request, config, deadline_at, stack)
            if response.status_code >= 300 or _is_json(response):
                yield await _whole_body_events(response, config, deadline_at)
                return
            async with aclosing(_read_batches(response, parser, config, deadline_at)) as batches:
                async for batch in batches:
                    yield batch
    except _REQUEST_FAILURES as exc:
        if parser.data_lines == 0 and not parser.done:
            raise _request_error(exc, config.api_key) from exc
        if not parser.finished:
            detail = redact(f"{type(exc).__name__}: {exc}", config.api_key)
            raise ProtocolError(CUT_OFF_MESSAGE, detail=detail) from exc
        if events := parser.close():
            yield events


async def _open_stream(
    client: httpx.AsyncClient,
    request: ChatRequest,
    config: UpstreamConfig,
    deadline_at: float,
    stack: AsyncExitStack,
) -> httpx.Response:
    """Send the request and wait for the response head, under the watchdog."""
    stream = client.stream(
        "POST",
        config.url,
        content=_json_body(request.body()),
        headers=_headers(config, stream=True),
    )
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout_at(min(deadline_at, loop.time() + config.chunk_timeout)):
            response = await stack.enter_async_context(stream)
    except TimeoutError:
        raise _timeout_error(loop.time() >= deadline_at, 0) from None
    logger.log(_status_level(response), "upstream stream status=%s", response.status_code)
    return response


async def _whole_body_events(
    response: httpx.Response, config: UpstreamConfig, deadline_at: float
) -> list[Event]:
    """An error status, or a 200 with JSON: some gateways ignore "stream" or report errors so."""
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout_at(min(deadline_at, loop.time() + config.chunk_timeout)):
            body = await _read_body(response)
    except TimeoutError:
        raise _timeout_error(loop.time() >= deadline_at, 0) from None
    except httpx.HTTPError:
        if response.status_code < 300:
            raise
        body = ""  # the status alone still says what went wrong
    if response.status_code >= 300:
        raise error_from_response(response.status_code, body, response.headers, config.api_key)
    return completion_events(body, config.api_key)


async def _read_batches(
    response: httpx.Response, parser: SSEParser, config: UpstreamConfig, deadline_at: float
) -> AsyncGenerator[list[Event], None]:
    """The events of each read, under the chunk watchdog and the deadline."""
    loop = asyncio.get_running_loop()
    watchdog = Watchdog(min(deadline_at, loop.time() + config.chunk_timeout))
    hold = _hold(response, config)
    try:
        async with aclosing(_body_parts(response)) as reads:
            while True:
                # Checked here too: a read of data already buffered never wakes the timer.
                if loop.time() >= watchdog.at and not parser.finished:
                    raise _timeout_error(loop.time() >= deadline_at, parser.data_lines)
                try:
                    # A timeout here closes the response: the reply is given up.
                    with watchdog:
                        data = await anext(reads, b"")
                except TimeoutError:
                    if not parser.finished:
                        raise _timeout_error(
                            loop.time() >= deadline_at, parser.data_lines
                        ) from None
                    break  # a stall after the finish chunk loses nothing
                if not data:
                    break
                read_at = loop.time()
                before = parser.data_lines
                events = parser.feed(data)
                if parser.data_lines != before:
                    watchdog.at = min(deadline_at, read_at + config.chunk_timeout)
                if hold is not None and not parser.finished:
                    hold(read_at + config.read_interval)
                if events:
                    yield events
                if parser.pending_error is not None:
                    raise parser.pending_error
    finally:
        watchdog.close()
    if events := parser.close():
        yield events


def _body_parts(response: httpx.Response) -> AsyncGenerator[bytes, None]:
    """The body as it arrives: raw when it isn't encoded, a layer of httpx fewer."""
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    parts = response.aiter_raw() if encoding == "identity" else response.aiter_bytes()
    return cast(AsyncGenerator[bytes, None], parts)


def _hold(response: httpx.Response, config: UpstreamConfig) -> Callable[[float], None] | None:
    """The connection's `hold(until)` when its reads may be paced (`chat.upstream.pacing`)."""
    if not config.read_interval:
        return None
    stream = response.extensions.get("network_stream")
    hold: Callable[[float], None] | None = getattr(stream, "hold", None)
    return hold


async def _read_body(response: httpx.Response) -> str:
    body = bytearray()
    async for data in response.aiter_bytes():
        body += data
        if len(body) > MAX_BODY_BYTES:
            break
    return body.decode("utf-8", errors="replace")


def _is_json(response: httpx.Response) -> bool:
    content_type: str = response.headers.get("content-type", "")
    return content_type.startswith("application/json")


def _status_level(response: httpx.Response) -> int:
    return logging.DEBUG if response.status_code < 300 else logging.INFO


# --- a whole reply --------------------------------------------------------------


async def complete_chat(request: ChatRequest, config: UpstreamConfig) -> tuple[str, Usage | None]:
    """One non-streamed reply (for short jobs such as titles): (answer text, usage)."""
    client = get_client(config)
    loop = asyncio.get_running_loop()
    deadline_at = loop.time() + config.deadline
    retries = Retries(config)
    while True:
        try:
            async with asyncio.timeout(deadline_at - loop.time()):
                return await _complete_once(client, request, config)
        except TimeoutError:
            raise UpstreamTimeout(DEADLINE_MESSAGE, detail="overall deadline reached") from None
        except UpstreamError as exc:
            delay = retries.delay_after(exc, deadline_at - loop.time())
            if delay is None:
                raise
        await asyncio.sleep(delay)


async def _complete_once(
    client: httpx.AsyncClient, request: ChatRequest, config: UpstreamConfig
) -> tuple[str, Usage | None]:
    body = _json_body(request.body(stream=False))
    headers = _headers(config, stream=False)
    try:
        async with client.stream("POST", config.url, content=body, headers=headers) as response:
            text = await _read_body(response)
    except _REQUEST_FAILURES as exc:
        raise _request_error(exc, config.api_key) from exc
    logger.log(_status_level(response), "upstream completion status=%s", response.status_code)
    if response.status_code >= 300:
        raise error_from_response(response.status_code, text, response.headers, config.api_key)
    return completion_answer(text, config.api_key)
