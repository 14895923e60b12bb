"""A socket's frames, checked: JSON of a sane shape, ids as UUIDs, content within limits.

Everything here raises FrameError, which the consumer answers with an
``error`` event (docs/protocol.md) and the socket stays open.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from django.conf import settings

from chat.text import UNSTORABLE_MESSAGE, is_storable

# A frame needs four levels (frame, settings, params, stop) and a few dozen values.
MAX_FRAME_DEPTH = 4
MAX_FRAME_VALUES = 200


class FrameError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def too_large(text_data: str | None, bytes_data: bytes | None) -> bool:
    """Over GLMWEB_MAX_FRAME_BYTES in UTF-8, as daphne counts a frame."""
    limit: int = settings.GLMWEB_MAX_FRAME_BYTES
    if bytes_data is not None:
        return len(bytes_data) > limit
    if text_data is None or len(text_data) * 4 <= limit:
        return False
    return len(text_data) > limit or len(text_data.encode("utf-8", "surrogatepass")) > limit


def parse_frame(text_data: str | None) -> dict[str, Any]:
    """The frame as a dict with a string ``type``, its values checked (check_values)."""
    if text_data is None:
        raise FrameError("bad_frame", "Frames must be JSON text, not binary.")
    try:
        frame = json.loads(text_data, parse_constant=_refuse_constant)
    except RecursionError:
        raise FrameError("bad_frame", "Frames can't be nested that deeply.") from None
    except ValueError:
        raise FrameError("bad_frame", "Frames must be JSON.") from None
    if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
        raise FrameError("bad_frame", "A frame must be a JSON object with a type.")
    check_values(frame)
    return frame


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not a number")


def check_values(frame: dict[str, Any]) -> None:
    """Refuse nesting and sizes no frame needs, and text the databases can't store alike."""
    pending: list[tuple[object, int]] = [(frame, 1)]
    seen = 0
    while pending:
        value, depth = pending.pop()
        seen += 1
        if seen > MAX_FRAME_VALUES:
            raise FrameError("bad_frame", "A frame can't hold that many values.")
        if isinstance(value, str):
            if not is_storable(value):
                raise FrameError("bad_frame", UNSTORABLE_MESSAGE)
        elif isinstance(value, dict | list):
            if depth > MAX_FRAME_DEPTH:
                raise FrameError("bad_frame", "Frames can't be nested that deeply.")
            items = value.values() if isinstance(value, dict) else value
            pending.extend((item, depth + 1) for item in items)
            if isinstance(value, dict):
                pending.extend((key, depth + 1) for key in value)


def optional_id(value: object, name: str = "conversation") -> str | None:
    return None if value is None else required_id(value, name)


def required_id(value: object, name: str = "conversation") -> str:
    """An id field, parsed as a UUID here and only here: its canonical text, or bad_frame."""
    if isinstance(value, str) and len(value) <= 64:
        try:
            return str(uuid.UUID(value))
        except ValueError:
            pass
    raise FrameError("bad_frame", f"{name} must be a {name} id.")


def checked_client_id(frame: dict[str, Any]) -> str:
    client_id = frame.get("client_id")
    if not isinstance(client_id, str) or not 1 <= len(client_id) <= 64:
        raise FrameError("bad_frame", "client_id must be a string of 1 to 64 characters.")
    return client_id


def checked_content(frame: dict[str, Any]) -> str:
    content = frame.get("content")
    if not isinstance(content, str):
        raise FrameError("bad_frame", "content must be a string.")
    if not content.strip():
        raise FrameError("empty_message", "Type a message first.")
    limit: int = settings.GLMWEB_MAX_MESSAGE_CHARS
    if len(content) > limit:
        raise FrameError(
            "too_large",
            f"Messages can be at most {limit:,} characters; this one has {len(content):,}.",
        )
    return content
