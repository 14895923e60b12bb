"""How sockets and running turns reach each other across worker processes.

Through the channel layer, per conversation:

- ``conversation_group``: every socket showing the conversation, on any
  worker, hears the turn's announced events (``start``, ``done``/``error``)
  and generated titles;
- ``control_group``: the running turn hears ``stop``, snapshot and unfollow
  requests from sockets on other workers.

One layer channel per process (and event loop) hears the control requests for
every turn running there (``control_channel``).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
import weakref
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

# Sent to every socket that joined the conversation, on every worker: how
# sockets elsewhere learn that a turn began (and ask to follow it) or ended.
ANNOUNCED_EVENTS = frozenset({"start", "done", "error"})


def conversation_group(conversation_id: uuid.UUID | str) -> str:
    return f"conv.{uuid.UUID(str(conversation_id)).hex}"


def control_group(conversation_id: uuid.UUID | str) -> str:
    return f"ctl.{uuid.UUID(str(conversation_id)).hex}"


def stop_message(conversation: str) -> dict[str, str]:
    return {"type": "turn.stop", "conversation": conversation}


def snapshot_request(conversation: str, reply_to: str) -> dict[str, str]:
    return {"type": "turn.snapshot", "conversation": conversation, "reply_to": reply_to}


def unfollow_message(conversation: str, reply_to: str) -> dict[str, str]:
    return {"type": "turn.unfollow", "conversation": conversation, "reply_to": reply_to}


# A turn adds this process's channel to its conversation's control group and
# leaves it there: a request for a turn that has ended is ignored, and the
# layer expires the group. (A channel, a receive loop, a discard and an end
# message per turn were five Redis round trips per turn, and under load left
# receive loops behind.)
_control_channels: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[int, asyncio.Task[str]]
] = weakref.WeakKeyDictionary()
_LISTENERS: set[asyncio.Task[None]] = set()

Handler = Callable[[dict[str, Any]], None]


async def control_channel(layer: Any, handle: Handler) -> str:
    """This process's control channel on ``layer``; ``handle`` gets each request it hears.

    Opened, and its listener started, on the first call on each event loop.
    """
    loop = asyncio.get_running_loop()
    per_loop = _control_channels.setdefault(loop, {})
    opening = per_loop.get(id(layer))
    if opening is None or (opening.done() and opening.exception() is not None):
        opening = per_loop[id(layer)] = loop.create_task(_open_control_channel(layer, handle))
    return await opening


async def _open_control_channel(layer: Any, handle: Handler) -> str:
    channel: str = await layer.new_channel()
    listener = asyncio.get_running_loop().create_task(_listen(layer, channel, handle))
    _LISTENERS.add(listener)
    listener.add_done_callback(_LISTENERS.discard)
    return channel


async def _listen(layer: Any, channel: str, handle: Handler) -> None:
    while True:
        try:
            message = await layer.receive(channel)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.warning("control channel receive failed", exc_info=True)
            await asyncio.sleep(1)
            continue
        handle(message)
