"""The provider client: an OpenAI-compatible Chat Completions upstream (GLM-5 and friends).

It sends a `ChatRequest` with the settings of an `UpstreamConfig` and turns the
reply into typed events (`ReasoningDelta`, `ContentDelta`, `Finish`, `Usage`)
and every failure into a typed `UpstreamError` whose `user_message` is safe to
show to a person. Modules:

- events: the request, the config, the events;
- errors: the error types, their messages, an error response's mapping;
- retries: when a request is tried again (only before its first event);
- sse: a reply body parsed into events (streamed or whole);
- client: the HTTP side, on `httpx.AsyncClient` (`stream_chat`, `complete_chat`);
- redaction: the key and key-shaped text out of whatever the upstream said;
- demo: the offline demo model, for a clone with no API key.

This package imports nothing of Django and nothing of `chat` outside itself:
settings come in as an `UpstreamConfig`, which the caller builds. Callers use
the names below: `from chat import upstream; upstream.ChatRequest(...)`.
"""

from __future__ import annotations

from chat.upstream.client import (
    close_clients,
    complete_chat,
    get_client,
    stream_chat,
    stream_chat_batches,
)
from chat.upstream.errors import (
    CUT_OFF_MESSAGE,
    DEADLINE_MESSAGE,
    AuthError,
    BadRequest,
    NotFoundError,
    Overloaded,
    ProtocolError,
    QuotaExhausted,
    RateLimited,
    StreamError,
    Unreachable,
    UpstreamError,
    UpstreamTimeout,
    error_from_response,
    parse_retry_after,
    wait_in_words,
)
from chat.upstream.events import (
    ChatRequest,
    ContentDelta,
    Event,
    Finish,
    ReasoningDelta,
    UpstreamConfig,
    Usage,
)
from chat.upstream.redaction import redact
from chat.upstream.sse import SSEParser

__all__ = [
    "CUT_OFF_MESSAGE",
    "DEADLINE_MESSAGE",
    "AuthError",
    "BadRequest",
    "ChatRequest",
    "ContentDelta",
    "Event",
    "Finish",
    "NotFoundError",
    "Overloaded",
    "ProtocolError",
    "QuotaExhausted",
    "RateLimited",
    "ReasoningDelta",
    "SSEParser",
    "StreamError",
    "Unreachable",
    "UpstreamConfig",
    "UpstreamError",
    "UpstreamTimeout",
    "Usage",
    "close_clients",
    "complete_chat",
    "error_from_response",
    "get_client",
    "parse_retry_after",
    "redact",
    "stream_chat",
    "stream_chat_batches",
    "wait_in_words",
]
