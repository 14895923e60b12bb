"""The upstream's failures as typed errors, each with a message fit to show a person."""

from __future__ import annotations

import email.utils
import json
import math
import re
import time
from collections.abc import Mapping

from chat.upstream.redaction import redact


class UpstreamError(Exception):
    """A failure talking to the upstream; `user_message` is safe to show to a person.

    Text from the upstream goes through `redaction.redact`, with the
    configured key, before it is put in `user_message` or `detail` (see
    `_harmless` and `snippet`): both are shown, saved or logged.
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


def snippet(text: str, key: str, limit: int = 300) -> str:
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
    status: int, body: str, headers: Mapping[str, str] | None = None, key: str = ""
) -> UpstreamError:
    """Map an HTTP error response to the matching typed error; `key` is never repeated."""
    message, code = _error_fields(body)
    detail = f"status={status} body={snippet(body, key)}"
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


def stream_error(error: object, key: str) -> StreamError:
    message = error.get("message") if isinstance(error, dict) else error
    safe = _harmless(message, key)
    user_message = f"The model provider reported an error: {safe}" if safe else None
    return StreamError(user_message, detail=f"error payload={snippet(str(error), key)}")
