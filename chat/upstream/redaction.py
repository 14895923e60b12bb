"""Secrets out of text that came from the upstream, before it is shown, saved or logged.

Providers echo what they were sent: a 400 body may quote the key, a stream's
error event may name the token. `redact` is the one function that removes
them: the configured key (whole, and each part of a GLM-style `<id>.<secret>`
key) and anything shaped like a provider key. No Django and no HTTP here, so
any client and the log formatter can use it.
"""

from __future__ import annotations

import re

REDACTED = "[redacted]"

# A shorter part of a key could be an ordinary word of the text.
_MIN_KEY_PART = 8

_KEY_SHAPES = re.compile(
    "|".join(
        (
            r"\b(?:sk|pk|key)-[A-Za-z0-9_\-]{6,}",  # OpenAI, Anthropic and friends
            r"\bBearer\s+\S+",
            # GLM (Zhipu): a 32-hex id, a dot, the secret; matched even when cut short.
            r"\b[0-9a-f]{32}\.[A-Za-z0-9_\-]*",
            r"\bAIza[A-Za-z0-9_\-]{20,}",  # Google
        )
    ),
    re.IGNORECASE,
)


def key_parts(key: str) -> list[str]:
    """What of `key` must never be shown: the whole value and, for `<id>.<secret>`, each part."""
    key = key.strip()
    parts = {key, *key.split(".")}
    # Longest first: the whole key goes before its parts cut it up.
    return sorted((part for part in parts if len(part) >= _MIN_KEY_PART), key=len, reverse=True)


def redact(text: str, key: str = "") -> str:
    """`text` with the configured `key` and anything shaped like a key replaced."""
    for part in key_parts(key):
        text = text.replace(part, REDACTED)
    return _KEY_SHAPES.sub(REDACTED, text)
