"""Turn events to the sockets of this process, without the channel layer.

A socket that joins a conversation registers here. A turn running in this
process encodes each event once and hands it to the registered sockets
directly, in order; each socket queues it and writes it from its own task, so
a slow socket never holds up the turn. The channel layer carries a turn's
events only to sockets on other worker processes (see chat.turns.runner).
"""

from __future__ import annotations

import json
import uuid
from typing import Any, Protocol

from channels.layers import InMemoryChannelLayer


class Listener(Protocol):
    def deliver(self, event: dict[str, Any], text: str | None) -> None:
        """Queue one event for the socket; `text` is its JSON, or None when it
        came through the channel layer (from another worker)."""


# Names this process in layer messages: its own sockets got those events directly.
PROCESS = uuid.uuid4().hex

# Sockets of this process by the conversation they joined.
_listeners: dict[str, set[Listener]] = {}


def join(conversation: str, listener: Listener) -> None:
    _listeners.setdefault(conversation, set()).add(listener)


def leave(conversation: str, listener: Listener) -> None:
    joined = _listeners.get(conversation)
    if joined is not None:
        joined.discard(listener)
        if not joined:
            del _listeners[conversation]


def encode(event: dict[str, Any]) -> str:
    return json.dumps(event, ensure_ascii=False)


def publish(conversation: str, event: dict[str, Any]) -> None:
    """Hand an event to every socket of this process that joined the conversation."""
    joined = _listeners.get(conversation)
    if joined:
        text = encode(event)
        for listener in joined:
            listener.deliver(event, text)


def reaches_other_processes(layer: Any) -> bool:
    """Whether other worker processes can hear on this layer (Redis, not in-memory)."""
    return layer is not None and not isinstance(layer, InMemoryChannelLayer)
