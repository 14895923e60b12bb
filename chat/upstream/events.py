"""What goes to the upstream and what comes back: the request, the settings, typed events."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


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
    """The upstream's address, key and limits; the caller builds it from its settings."""

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
    # Longest wait for a free connection when max_connections are in use.
    pool_timeout: float = 30.0
    # Read a streamed reply at most this often once it flows: the tokens that
    # arrive in between are read, parsed and handed on together (0: as they come).
    read_interval: float = 0.0

    @property
    def url(self) -> str:
        return self.base_url.rstrip("/") + "/chat/completions"

    def __repr__(self) -> str:  # never print the key
        return f"UpstreamConfig(base_url={self.base_url!r}, api_key='***')"
