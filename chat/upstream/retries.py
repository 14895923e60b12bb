"""When to try a request again: only before the first event, and not often.

5xx answers and connection failures: up to `max_retries` more tries, with
jittered exponential backoff. A 429: once, after its Retry-After if that is
short (`retry_after_max`), else not at all (the person is told how long to wait).
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass

from chat.upstream.errors import RateLimited, UpstreamError
from chat.upstream.events import UpstreamConfig

logger = logging.getLogger("chat.upstream")

# Longest wait before retrying a 5xx or a connection failure.
MAX_BACKOFF = 10.0


def backoff(attempt: int, config: UpstreamConfig) -> float:
    # Equal jitter: half fixed, half random, so retries from a burst spread out.
    base = config.backoff_base * 2.0**attempt
    return min(MAX_BACKOFF, base / 2 + random.uniform(0, base / 2))


@dataclass
class Retries:
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
        return backoff(self.done, self.config)

    def _rate_limit_delay(self, exc: RateLimited) -> float | None:
        # Once at most: hammering a rate limit only keeps it in force, and a
        # long Retry-After is the person's to wait out (the message says how long).
        if self.rate_limit_retried:
            return None
        if exc.retry_after is None:
            return backoff(self.done, self.config)
        if exc.retry_after > self.config.retry_after_max:
            return None
        return exc.retry_after
