"""The project's fake upstream in its own process, logging when it sends each token.

`python -m bench.fake --port P` serves `bench.fake_upstream.FakeUpstream` and adds
one control endpoint, `GET /_fake/sendlog`: for every streamed reply since the
last call, the `time.monotonic()` at which each content token was written to
the socket, keyed by the request's last message. CLOCK_MONOTONIC is
system-wide on Linux, so the benchmark client can subtract it from its own
arrival times.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from bench import fake_upstream
from bench.fake_upstream import FakeUpstream

SEND_LOG: dict[str, list[float]] = {}


class TimedStream(fake_upstream._Stream):
    async def delta(self, field: str, text: str) -> None:
        if field == "content":
            times = getattr(self, "_times", None)
            if times is None:
                messages = self.body.get("messages") or [{}]
                key = str(messages[-1].get("content", ""))
                times = self._times = SEND_LOG.setdefault(key, [])
            times.append(time.monotonic())
        await super().delta(field, text)

    async def wait(self, seconds: float) -> None:
        # asyncio sleeps a millisecond at least: keep to a schedule instead, so
        # that a 0.25 ms delay means 4,000 tokens a second, on average.
        if seconds > 0.05 or self.scenario.keepalive_every:
            await super().wait(seconds)
            return
        loop = asyncio.get_running_loop()
        # (Never more than 50 ms behind it: a stalled fake doesn't catch up in a burst.)
        self._due = max(getattr(self, "_due", 0.0), loop.time() - 0.05) + seconds
        if self._due - loop.time() >= 0.001:
            await asyncio.sleep(self._due - loop.time())


class TimedFake(FakeUpstream):
    def _apply_control(self, method: str, path: str, payload: Any) -> object | None:
        if (method, path) == ("GET", "/_fake/sendlog"):
            log = dict(SEND_LOG)
            SEND_LOG.clear()
            return log
        return super()._apply_control(method, path, payload)


async def serve(port: int) -> None:
    # The fake builds each reply with the module's _Stream: swap in the timed one.
    fake_upstream._Stream = TimedStream  # type: ignore[misc]
    fake = TimedFake(require_key=False)
    await fake.start("127.0.0.1", port)
    print(fake.base_url, flush=True)
    await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    asyncio.run(serve(parser.parse_args().port))


if __name__ == "__main__":
    main()
