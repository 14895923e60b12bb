"""Client for an OpenAI-compatible Chat Completions upstream (GLM-5 and friends).

HTTP and Server-Sent Events only: this module knows nothing of Django. It turns
a streamed reply into typed events (`ReasoningDelta`, `ContentDelta`, `Finish`,
`Usage`) and every failure into a typed `UpstreamError` whose `user_message` is
safe to show to a person.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import math
import random
import re
import time
import weakref
from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

import httpx

from chat import upstream_http
from chat.redaction import redact

logger = logging.getLogger("chat.upstream")


# --- events -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReasoningDelta:
    text: str


@dataclass(frozen=True, slots=True)
class ContentDelta:
    text: str


@dataclass(frozen=True, slots=True)
class Finish:
    reason: str


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


Event = ReasoningDelta | ContentDelta | Finish | Usage


# --- errors -------------------------------------------------------------------


class UpstreamError(Exception):
    """A failure talking to the upstream; `user_message` is safe to show to a person.

    Text from the upstream goes through `chat.redaction.redact`, with the
    configured key, before it is put in `user_message` or `detail` (see
    `_harmless` and `_snippet`): both are shown, saved or logged.
    """

    code = "upstream_error"
    default_message = "The model provider returned an error. Please try again."
    default_retryable = False

    def __init__(
        self,
        user_message: str | None = None,
        *,
        detail: str = "",
        retryable: bool | None = None,
    ) -> None:
        self.user_message = user_message or self.default_message
        self.detail = detail
        self.retryable = self.default_retryable if retryable is None else retryable
        super().__init__(f"{self.code}: {self.user_message}" + (f" ({detail})" if detail else ""))


class AuthError(UpstreamError):
    code = "upstream_auth"
    default_message = (
        "The model provider rejected the server's API key. An administrator needs to check it."
    )


class NotFoundError(UpstreamError):
    code = "model_not_found"
    default_message = "The model provider does not know the configured model."


class RateLimited(UpstreamError):
    code = "rate_limited"
    default_message = (
        "The model provider is rate-limiting requests. Please wait a moment and try again."
    )
    default_retryable = True

    def __init__(
        self,
        user_message: str | None = None,
        *,
        detail: str = "",
        retryable: bool | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(user_message, detail=detail, retryable=retryable)
        self.retry_after = retry_after


class QuotaExhausted(UpstreamError):
    code = "upstream_quota"
    default_message = (
        "The model provider account has run out of credit or quota. "
        "An administrator needs to top it up."
    )


class Overloaded(UpstreamError):
    code = "upstream_overloaded"
    default_message = (
        "The model provider is overloaded or having problems right now. Please try again shortly."
    )
    default_retryable = True


class BadRequest(UpstreamError):
    code = "upstream_bad_request"
    default_message = "The model provider rejected the request."


class UpstreamTimeout(UpstreamError):
    code = "upstream_timeout"
    default_message = "The model stopped sending data for too long, so the reply was cut off."


class Unreachable(UpstreamError):
    code = "upstream_unreachable"
    default_message = "The model provider could not be reached. Please try again shortly."
    default_retryable = True


class ProtocolError(UpstreamError):
    code = "upstream_protocol"
    default_message = "The model provider sent a reply that could not be understood."


class StreamError(UpstreamError):
    code = "upstream_error"
    default_message = "The model provider reported an error while writing the reply."


CUT_OFF_MESSAGE = "The connection to the model provider broke before the reply was finished."
DEADLINE_MESSAGE = "The reply took longer than the time allowed, so it was cut off."
CONNECT_TIMEOUT_MESSAGE = "The model provider did not answer in time. Please try again shortly."
OVERLOADED_MESSAGE = "The server is handling too many replies right now. Please try again shortly."
UNSENDABLE_MESSAGE = (
    "The request to the model provider could not be sent. "
    "An administrator needs to check the upstream settings."
)

_URL_RE = re.compile(r"(?:https?|wss?)://\S+|\bwww\.\S+", re.IGNORECASE)
# A long run of letters and digits in a provider's message: a token, a key, a
# request id; nothing a person needs to read.
_OPAQUE_RE = re.compile(r"\b(?=[A-Za-z0-9_-]*\d)(?=[A-Za-z0-9_-]*[A-Za-z])[A-Za-z0-9_-]{24,}")
_HOSTLIKE_RE = re.compile(r"\b[\w-]+(?:\.[\w-]+)*\.(?:com|net|org|io|ai|cn|dev|co)\b", re.I)
_QUOTA_MARKERS = (
    "insufficient_quota",
    "insufficient quota",
    "insufficient balance",
    "insufficient_balance",
    "exceeded your current quota",
    "billing",
    "payment required",
    "credit balance",
    "out of credits",
    "余额不足",
    "欠费",
)
_QUOTA_CODES = {"1113", "insufficient_quota", "insufficient_balance"}


def _snippet(text: str, key: str, limit: int = 300) -> str:
    """Upstream text for `detail` (logs): redacted first, so a cut can't split a key."""
    return repr(redact(text, key)[:limit])


def _harmless(message: object, key: str, *, limit: int = 200) -> str | None:
    """A provider message fit to show a person, or None: short, no URLs, hosts or keys."""
    if not isinstance(message, str):
        return None
    cleaned = _OPAQUE_RE.sub("", _HOSTLIKE_RE.sub("", _URL_RE.sub("", redact(message, key))))
    cleaned = " ".join(cleaned.split())
    if not cleaned or len(cleaned) > limit:
        return None
    return cleaned


def _error_fields(body: str) -> tuple[str | None, str]:
    """(message, code) from an `{"error": {...}}` JSON body, if it is one."""
    try:
        payload = json.loads(body)
    except ValueError:
        return None, ""
    error = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(error, str):
        return error, ""
    if not isinstance(error, dict):
        message = payload.get("message") if isinstance(payload, dict) else None
        return (message if isinstance(message, str) else None), ""
    message = error.get("message")
    code = error.get("code") or error.get("type") or ""
    return (message if isinstance(message, str) else None), str(code)


def _looks_like_quota(body: str, code: str) -> bool:
    lowered = body.lower()
    return code.lower() in _QUOTA_CODES or any(marker in lowered for marker in _QUOTA_MARKERS)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP-date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def wait_in_words(seconds: float) -> str:
    """A wait in the largest unit that fits, rounded up: "45 seconds", "10 minutes"."""
    whole = max(1, math.ceil(seconds))
    for unit, size, up_to in (("second", 1, 60), ("minute", 60, 3600), ("hour", 3600, 86400)):
        if whole < up_to:
            count = math.ceil(whole / size)
            return f"{count} {unit}" + ("s" if count > 1 else "")
    days = math.ceil(whole / 86400)
    return f"{days} day" + ("s" if days > 1 else "")


def _rate_limited(detail: str, retry_after: float | None) -> RateLimited:
    message = None
    if retry_after is not None:
        message = (
            "The model provider is rate-limiting requests; "
            f"try again in {wait_in_words(retry_after)}."
        )
    return RateLimited(message, detail=detail, retry_after=retry_after)


def error_from_response(
    status: int, body: str, headers: httpx.Headers | dict[str, str] | None = None, key: str = ""
) -> UpstreamError:
    """Map an HTTP error response to the matching typed error; `key` is never repeated."""
    message, code = _error_fields(body)
    detail = f"status={status} body={_snippet(body, key)}"
    if status in (402, 429) and _looks_like_quota(body, code):
        return QuotaExhausted(detail=detail)
    if status in (401, 403):
        return AuthError(detail=detail)
    if status == 404:
        return NotFoundError(detail=detail)
    if status == 429:
        return _rate_limited(detail, parse_retry_after((headers or {}).get("retry-after")))
    if status == 408:
        return UpstreamTimeout(CONNECT_TIMEOUT_MESSAGE, detail=detail, retryable=True)
    if status >= 500:
        return Overloaded(detail=detail)
    safe = _harmless(message, key)
    user_message = f"The model provider rejected the request: {safe}" if safe else None
    return BadRequest(user_message, detail=detail)


def _stream_error(error: object, key: str) -> StreamError:
    message = error.get("message") if isinstance(error, dict) else error
    safe = _harmless(message, key)
    user_message = f"The model provider reported an error: {safe}" if safe else None
    return StreamError(user_message, detail=f"error payload={_snippet(str(error), key)}")


# --- SSE parsing --------------------------------------------------------------

_JSON = json.JSONDecoder()
_LINE_END_RE = re.compile(rb"\r\n|\r|\n")
_THINK_OPEN = "<think>"
_THINK_CLOSE = "</think>"


def _partial_tag_length(text: str, tag: str) -> int:
    """Length of the longest suffix of `text` that is a proper prefix of `tag`."""
    for size in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:size]):
            return size
    return 0


class _ThinkSplitter:
    """Routes `<think>…</think>` at the start of `delta.content` to reasoning.

    Only a think block opening before any visible answer text counts: a reply
    that *talks about* the tag later on must stay content.
    """

    def __init__(self) -> None:
        self.phase = "before"  # "before" -> "inside" -> "after"
        self.held = ""

    def split(self, text: str) -> list[Event]:
        if self.phase == "after":
            return [ContentDelta(text)] if text else []
        text = self.held + text
        self.held = ""
        events: list[Event] = []
        while text and self.phase != "after":
            tag = _THINK_OPEN if self.phase == "before" else _THINK_CLOSE
            at = text.find(tag)
            keep = 0 if at >= 0 else _partial_tag_length(text, tag)
            before_tag = text[:at] if at >= 0 else text[: len(text) - keep]
            if self.phase == "before" and before_tag.strip():
                self.phase = "after"  # visible text came first: no think block
                break
            if at >= 0:
                self._emit(events, text[:at])
                text = text[at + len(tag) :]
                self.phase = "inside" if self.phase == "before" else "after"
                continue
            self._emit(events, before_tag)
            self.held, text = text[len(text) - keep :], ""
        if text:
            events.append(ContentDelta(text))
        return events

    def flush(self) -> list[Event]:
        held, self.held = self.held, ""
        events: list[Event] = []
        self._emit(events, held)
        return events

    def _emit(self, events: list[Event], text: str) -> None:
        if text:
            events.append(ReasoningDelta(text) if self.phase == "inside" else ContentDelta(text))


def _usage_from(payload: object) -> Usage | None:
    if not isinstance(payload, dict):
        return None
    prompt, completion = payload.get("prompt_tokens"), payload.get("completion_tokens")
    if not isinstance(prompt, int) or not isinstance(completion, int):
        return None
    total = payload.get("total_tokens")
    # Some providers (x.ai) count reasoning in total_tokens only: keep their total.
    return Usage(prompt, completion, total if isinstance(total, int) else prompt + completion)


class SSEParser:
    """Incremental parser for a streamed Chat Completions body.

    Feed raw bytes as they arrive and get typed events back. Deltas come out as
    soon as their chunk is complete; `Finish` and `Usage` come out once each, at
    the end (on `[DONE]` or `close()`), carrying the last finish_reason and the
    last complete usage object seen, because providers repeat both (Avian sends
    two finish chunks, Groq sends usage twice, others send usage after finish).
    `data_lines` counts `data:` lines so far: a watchdog can tell real data
    from keep-alive comments by comparing it before and after a `feed()`.
    `key` is the API key, kept out of the errors' texts.
    """

    def __init__(self, key: str = "") -> None:
        self._key = key
        self.done = False
        self.finish_reason: str | None = None
        self.usage: Usage | None = None
        self.data_lines = 0
        self._buffer = b""
        self._data: list[str] = []
        self._think = _ThinkSplitter()
        self._ended = False
        # An error met after some events of the same feed, raised after them.
        self.pending_error: UpstreamError | None = None

    @property
    def finished(self) -> bool:
        """The reply said it is complete: a finish_reason or [DONE] came."""
        return self.finish_reason is not None or self.done

    def feed(self, data: bytes) -> list[Event]:
        if self.pending_error is not None:
            raise self.pending_error
        if not data or self._ended:
            return []
        scan_from = max(len(self._buffer) - 1, 0)
        buffer = self._buffer + data
        events: list[Event] = []
        start = 0
        try:
            if not self._data and b"\r" not in buffer:
                start = scan_from = self._whole_data_events(buffer, events)
            for match in _LINE_END_RE.finditer(buffer, scan_from):
                # A CR at the very end may be the first half of a CRLF still in flight.
                if match.group() == b"\r" and match.end() == len(buffer):
                    break
                self._line(buffer[start : match.start()], events)
                start = match.end()
                if self._ended:
                    break
        except UpstreamError as error:
            if not events:
                raise
            # The events before the bad one still count: they go out first, and
            # the error with the next call (see `pending_error`).
            self.pending_error, self._ended = error, True
        self._buffer = b"" if self._ended else buffer[start:]
        return events

    def close(self) -> list[Event]:
        """End of body: flush what is pending; ProtocolError if the reply was cut."""
        if self.pending_error is not None:
            raise self.pending_error
        events: list[Event] = []
        if not self._ended:
            if self._buffer:
                self._line(self._buffer.rstrip(b"\r"), events)
                self._buffer = b""
            if not self._ended:
                self._dispatch(events)
        if not self._ended:
            if self.finish_reason is None:
                raise ProtocolError(
                    CUT_OFF_MESSAGE, detail="stream ended without finish_reason or [DONE]"
                )
            events.extend(self._end())
        return events

    def _whole_data_events(self, buffer: bytes, events: list[Event]) -> int:
        """Take the run of complete one-line `data: {…}` events `buffer` opens with.

        Nearly every event of a stream is one, and this takes each with a few
        calls into C instead of the line-by-line parser's Python per line.
        Returns where the run ends: the line-by-line parser takes the rest.
        """
        last = buffer.rfind(b"\n\n")
        if last < 0:
            return 0
        try:
            text = buffer[: last + 2].decode()
        except UnicodeDecodeError:
            return 0  # the line-by-line parser replaces what isn't UTF-8
        pos = 0
        while (end := text.find("\n\n", pos)) >= 0 and text.startswith("data:", pos):
            value_at = pos + 6 if text.startswith(" ", pos + 5) else pos + 5
            if not text.startswith("{", value_at):
                break
            try:
                chunk, chunk_end = _JSON.raw_decode(text, value_at)
            except ValueError:
                break
            if chunk_end != end or text.find("\n", value_at, end) >= 0:
                break  # more on the line, or more lines in the event
            self.data_lines += 1
            pos = end + 2
            self._chunk(chunk, events)
        return last + 2 if pos == len(text) else len(text[:pos].encode())

    def _line(self, raw: bytes, events: list[Event]) -> None:
        if not raw:
            self._dispatch(events)
            return
        if raw[:1] == b":":
            return  # comment / keep-alive
        field, _, value = raw.partition(b":")
        if field != b"data":
            return  # event:, id:, retry: and unknown fields carry nothing for us
        self.data_lines += 1
        if value[:1] == b" ":
            value = value[1:]
        self._data.append(value.decode("utf-8", errors="replace"))

    def _dispatch(self, events: list[Event]) -> None:
        if not self._data:
            return
        lines, self._data = self._data, []
        payload = "\n".join(lines)
        try:
            chunks = [json.loads(payload)] if payload.strip() != "[DONE]" else [None]
        except ValueError:
            chunks = self._lines_as_chunks(lines)
        for chunk in chunks:
            if chunk is None:
                self.done = True
                events.extend(self._end())
                return
            self._chunk(chunk, events)

    def _lines_as_chunks(self, lines: list[str]) -> list[Any]:
        # Some servers omit the blank line between events; try each line alone.
        chunks: list[Any] = []
        for line in lines:
            if line.strip() == "[DONE]":
                chunks.append(None)
                continue
            try:
                chunks.append(json.loads(line))
            except ValueError:
                raise ProtocolError(
                    detail=f"malformed JSON chunk: {_snippet(line, self._key, 200)}"
                ) from None
        return chunks

    def _chunk(self, chunk: Any, events: list[Event]) -> None:
        if not isinstance(chunk, dict):
            raise ProtocolError(
                detail=f"chunk is not an object: {_snippet(str(chunk), self._key, 100)}"
            )
        if chunk.get("error"):
            raise _stream_error(chunk["error"], self._key)
        usage = _usage_from(chunk.get("usage"))
        if usage is not None:
            self.usage = usage
        choices = chunk.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            return
        choice = choices[0]
        delta = choice.get("delta")
        if isinstance(delta, dict):
            self._delta(delta, events)
        reason = choice.get("finish_reason")
        if isinstance(reason, str) and reason:
            self.finish_reason = reason

    def _delta(self, delta: dict[str, Any], events: list[Event]) -> None:
        reasoning = delta.get("reasoning_content")
        if not isinstance(reasoning, str) or not reasoning:
            reasoning = delta.get("reasoning")
        if isinstance(reasoning, str) and reasoning:
            events.append(ReasoningDelta(reasoning))
        content = delta.get("content")
        if isinstance(content, str) and content:
            events.extend(self._think.split(content))

    def _end(self) -> list[Event]:
        self._ended = True
        events = self._think.flush()
        # [DONE] without any finish_reason is still a normal, complete reply.
        events.append(Finish(self.finish_reason or "stop"))
        if self.usage is not None:
            events.append(self.usage)
        return events


# --- request and config -------------------------------------------------------


@dataclass(frozen=True)
class ChatRequest:
    model: str
    messages: list[dict[str, str]]
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: list[str] | None = None
    # GLM's switch for the model's thinking; None leaves it to the model.
    thinking: bool | None = None

    def body(self, *, stream: bool = True) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.model, "messages": self.messages}
        for name in ("max_tokens", "temperature", "top_p", "stop"):
            value = getattr(self, name)
            if value is not None:
                body[name] = value
        if self.thinking is not None:
            body["thinking"] = {"type": "enabled" if self.thinking else "disabled"}
        if stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        return body

    def estimated_prompt_tokens(self) -> int:
        """About four characters a token, and four a message: for a reply never counted."""
        return sum(len(m["content"]) for m in self.messages) // 4 + 4 * len(self.messages)


@dataclass(frozen=True)
class UpstreamConfig:
    base_url: str
    api_key: str
    connect_timeout: float = 10.0
    chunk_timeout: float = 60.0
    deadline: float = 600.0
    # Retries before the first event: 5xx and connection failures up to
    # max_retries; a 429 once, if its Retry-After is at most retry_after_max.
    max_retries: int = 2
    retry_after_max: float = 10.0
    backoff_base: float = 0.5
    max_connections: int = 1000
    keepalive_connections: int = 20
    keepalive_expiry: float = 5.0
    # Read a streamed reply at most this often once it flows: tokens arriving
    # in between are read, parsed and handed on together (0: as they come).
    read_interval: float = 0.0

    @property
    def url(self) -> str:
        return self.base_url.rstrip("/") + "/chat/completions"

    def __repr__(self) -> str:  # never print the key
        return f"UpstreamConfig(base_url={self.base_url!r}, api_key='***')"


# --- HTTP client --------------------------------------------------------------

# One pool of connections per event loop and pool shape (chat.upstream_http).
_Shape = tuple[float, int, int, float]
_pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[_Shape, upstream_http.Pool]] = (
    weakref.WeakKeyDictionary()
)


def get_pool(config: UpstreamConfig) -> upstream_http.Pool:
    """The connections to the upstream for the running event loop."""
    shape = (
        config.connect_timeout,
        config.max_connections,
        config.keepalive_connections,
        config.keepalive_expiry,
    )
    per_loop = _pools.setdefault(asyncio.get_running_loop(), {})
    pool = per_loop.get(shape)
    if pool is None or pool.closed:
        pool = per_loop[shape] = upstream_http.Pool(
            # trust_env: SSL_CERT_FILE / SSL_CERT_DIR name a private CA, as for httpx.
            httpx.create_ssl_context(trust_env=True),
            max_connections=config.max_connections,
            keepalive=config.keepalive_connections,
            keepalive_expiry=config.keepalive_expiry,
            connect_timeout=config.connect_timeout,
        )
    return pool


async def close_clients() -> None:
    """Close the running loop's connections (call on shutdown and between tests)."""
    for pool in _pools.pop(asyncio.get_running_loop(), {}).values():
        await pool.aclose()


def _headers(config: UpstreamConfig, *, stream: bool) -> list[tuple[str, str]]:
    headers = [("Accept", "text/event-stream" if stream else "application/json")]
    key = config.api_key.strip()
    if key:  # with no key the upstream answers 401, which names the problem
        headers.append(("Authorization", f"Bearer {key}"))
    return headers


def _json_body(body: dict[str, Any]) -> bytes:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def _connection_error(exc: upstream_http.HTTPError, key: str) -> UpstreamError:
    # The message can quote a header value, so the key must be scrubbed.
    detail = redact(f"{type(exc).__name__}: {exc}", key)
    match exc:
        case upstream_http.ConnectTimedOut():
            return UpstreamTimeout(CONNECT_TIMEOUT_MESSAGE, detail=detail, retryable=True)
        case upstream_http.PoolFull():
            return Overloaded(OVERLOADED_MESSAGE, detail=detail)
        case upstream_http.ConnectFailed() | upstream_http.ConnectionBroken():
            return Unreachable(detail=detail)
        case upstream_http.Malformed():
            return ProtocolError(detail=detail)
    return UpstreamError(UNSENDABLE_MESSAGE, detail=detail)


# Longest wait before retrying a 5xx or a connection failure.
MAX_BACKOFF = 10.0


def _backoff(attempt: int, config: UpstreamConfig) -> float:
    # Equal jitter: half fixed, half random, so retries from a burst spread out.
    base = config.backoff_base * (2**attempt)
    return min(MAX_BACKOFF, base / 2 + random.uniform(0, base / 2))


@dataclass
class _Retries:
    """The retries of one request so far, and whether (and when) to try once more."""

    config: UpstreamConfig
    done: int = 0
    rate_limit_retried: bool = False

    def delay_after(self, exc: UpstreamError, time_left: float) -> float | None:
        """Seconds to wait before the next attempt after `exc`, or None to give up."""
        delay = self._delay(exc)
        if delay is not None and delay >= time_left:
            delay = None
        attempt = self.done + 1
        if delay is None:
            logger.warning(
                "upstream attempt %d failed, giving up: %s %s", attempt, exc.code, exc.detail
            )
            return None
        logger.info(
            "upstream attempt %d failed, retrying in %.2fs: %s %s",
            attempt,
            delay,
            exc.code,
            exc.detail,
        )
        self.done += 1
        self.rate_limit_retried |= isinstance(exc, RateLimited)
        return delay

    def _delay(self, exc: UpstreamError) -> float | None:
        if not exc.retryable or self.done >= self.config.max_retries:
            return None
        if isinstance(exc, RateLimited):
            return self._rate_limit_delay(exc)
        return _backoff(self.done, self.config)

    def _rate_limit_delay(self, exc: RateLimited) -> float | None:
        # Once at most: hammering a rate limit only keeps it in force, and a
        # long Retry-After is the person's to wait out (the message says how long).
        if self.rate_limit_retried:
            return None
        if exc.retry_after is None:
            return _backoff(self.done, self.config)
        if exc.retry_after > self.config.retry_after_max:
            return None
        return exc.retry_after


async def _stream_once(
    pool: upstream_http.Pool,
    request: ChatRequest,
    config: UpstreamConfig,
    deadline_at: float,
) -> AsyncIterator[list[Event]]:
    parser = SSEParser(config.api_key)
    try:
        response = await _open_stream(pool, request, config, deadline_at)
        try:
            if response.status_code >= 300 or _is_json(response):
                yield await _whole_body_events(response, config, deadline_at)
                return
            async with aclosing(_read_batches(response, parser, config, deadline_at)) as batches:
                async for batch in batches:
                    yield batch
        finally:
            await response.aclose()
    except upstream_http.HTTPError as exc:
        if parser.data_lines == 0 and not parser.done:
            raise _connection_error(exc, config.api_key) from exc
        if not parser.finished:
            detail = redact(f"{type(exc).__name__}: {exc}", config.api_key)
            raise ProtocolError(CUT_OFF_MESSAGE, detail=detail) from exc
        if events := parser.close():
            yield events


async def _open_stream(
    pool: upstream_http.Pool, request: ChatRequest, config: UpstreamConfig, deadline_at: float
) -> upstream_http.Response:
    """Send the request and wait for the response head, under the watchdog."""
    body = _json_body(request.body())
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout_at(min(deadline_at, loop.time() + config.chunk_timeout)):
            response = await pool.post(config.url, _headers(config, stream=True), body)
    except TimeoutError:
        raise _timeout_error(loop.time() >= deadline_at, SSEParser()) from None
    logger.log(_status_level(response), "upstream stream status=%s", response.status_code)
    return response


async def _whole_body_events(
    response: upstream_http.Response, config: UpstreamConfig, deadline_at: float
) -> list[Event]:
    """An error status, or a 200 with JSON: some gateways ignore "stream" or report errors so."""
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout_at(min(deadline_at, loop.time() + config.chunk_timeout)):
            body = (await response.read()).decode("utf-8", errors="replace")
    except TimeoutError:
        raise _timeout_error(loop.time() >= deadline_at, SSEParser()) from None
    except upstream_http.HTTPError:
        if response.status_code < 300:
            raise
        body = ""  # the status alone still says what went wrong
    if response.status_code >= 300:
        raise error_from_response(response.status_code, body, response.headers, config.api_key)
    return _completion_events(body, config.api_key)


async def _read_batches(
    response: upstream_http.Response, parser: SSEParser, config: UpstreamConfig, deadline_at: float
) -> AsyncIterator[list[Event]]:
    """The events of each read: everything that arrived since the one before."""
    loop = asyncio.get_running_loop()
    watch_at = min(deadline_at, loop.time() + config.chunk_timeout)
    while True:
        if loop.time() >= watch_at and not parser.finished:
            # Checked here too: a read of data already there never wakes the timeout.
            raise _timeout_error(loop.time() >= deadline_at, parser)
        try:
            data = await response.read_some(watch_at)
        except TimeoutError:
            if not parser.finished:
                raise _timeout_error(loop.time() >= deadline_at, parser) from None
            break  # a stall after the finish chunk loses nothing
        if not data:
            break
        read_at = loop.time()
        before = parser.data_lines
        events = parser.feed(data)
        if parser.data_lines != before:
            watch_at = min(deadline_at, read_at + config.chunk_timeout)
        if config.read_interval and not parser.finished:
            response.hold(read_at + config.read_interval)
        if events:
            yield events
        if parser.pending_error is not None:
            raise parser.pending_error
    if events := parser.close():
        yield events


def _timeout_error(deadline_passed: bool, parser: SSEParser) -> UpstreamTimeout:
    if deadline_passed:
        return UpstreamTimeout(DEADLINE_MESSAGE, detail="overall deadline reached")
    # Not retried: another full watchdog period would leave the person waiting too long.
    return UpstreamTimeout(detail=f"chunk watchdog fired after {parser.data_lines} data lines")


async def stream_chat(request: ChatRequest, config: UpstreamConfig) -> AsyncIterator[Event]:
    """Stream one reply as events; retries happen only before the first event."""
    async with aclosing(stream_chat_batches(request, config)) as batches:
        async for batch in batches:
            for event in batch:
                yield event


async def stream_chat_batches(
    request: ChatRequest, config: UpstreamConfig
) -> AsyncIterator[list[Event]]:
    """`stream_chat`, a list of events per read: what arrived together comes together."""
    pool = get_pool(config)
    loop = asyncio.get_running_loop()
    deadline_at = loop.time() + config.deadline
    retries = _Retries(config)
    while True:
        yielded = False
        try:
            async with aclosing(_stream_once(pool, request, config, deadline_at)) as batches:
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


async def _complete_once(
    pool: upstream_http.Pool, request: ChatRequest, config: UpstreamConfig
) -> tuple[str, Usage | None]:
    body = _json_body(request.body(stream=False))
    try:
        response = await pool.post(config.url, _headers(config, stream=False), body)
        try:
            text = (await response.read()).decode("utf-8", errors="replace")
        finally:
            await response.aclose()
    except upstream_http.HTTPError as exc:
        raise _connection_error(exc, config.api_key) from exc
    logger.log(_status_level(response), "upstream completion status=%s", response.status_code)
    if response.status_code >= 300:
        raise error_from_response(response.status_code, text, response.headers, config.api_key)
    return _parse_completion(text, config.api_key)


def _completion_events(text: str, key: str) -> list[Event]:
    """Events equivalent to a whole (non-streamed) chat.completion body."""
    try:
        payload = json.loads(text)
        if payload.get("error"):
            raise _stream_error(payload["error"], key)
        choice = payload["choices"][0]
        message = choice["message"]
    except (ValueError, AttributeError, KeyError, IndexError, TypeError):
        detail = f"unexpected completion body: {_snippet(text, key, 200)}"
        raise ProtocolError(detail=detail) from None
    events: list[Event] = []
    reasoning = message.get("reasoning_content") or message.get("reasoning")
    if isinstance(reasoning, str) and reasoning:
        events.append(ReasoningDelta(reasoning))
    content = message.get("content")
    splitter = _ThinkSplitter()
    events += [*splitter.split(content if isinstance(content, str) else ""), *splitter.flush()]
    events.append(Finish(choice.get("finish_reason") or "stop"))
    usage = _usage_from(payload.get("usage"))
    return [*events, usage] if usage else events


def _parse_completion(text: str, key: str) -> tuple[str, Usage | None]:
    events = _completion_events(text, key)
    answer = "".join(e.text for e in events if isinstance(e, ContentDelta))
    usage = next((e for e in events if isinstance(e, Usage)), None)
    return answer, usage


def _is_json(response: upstream_http.Response) -> bool:
    return response.headers.get("content-type", "").startswith("application/json")


def _status_level(response: upstream_http.Response) -> int:
    return logging.DEBUG if response.status_code < 300 else logging.INFO


async def complete_chat(request: ChatRequest, config: UpstreamConfig) -> tuple[str, Usage | None]:
    """One non-streamed reply (for short jobs such as titles): (answer text, usage)."""
    pool = get_pool(config)
    loop = asyncio.get_running_loop()
    deadline_at = loop.time() + config.deadline
    retries = _Retries(config)
    while True:
        try:
            async with asyncio.timeout(deadline_at - loop.time()):
                return await _complete_once(pool, request, config)
        except TimeoutError:
            raise UpstreamTimeout(DEADLINE_MESSAGE, detail="overall deadline reached") from None
        except UpstreamError as exc:
            delay = retries.delay_after(exc, deadline_at - loop.time())
            if delay is None:
                raise
        await asyncio.sleep(delay)
