"""A timeout for a stream of reads whose deadline keeps moving later, at one timer per period.

`asyncio.timeout_at` around every read schedules and cancels a timer per read:
a streamed reply pays it per token. `Watchdog` keeps one timer; moving the
deadline later only records it, and the timer, when it fires early, sets
itself again for the new time. As with `asyncio.timeout`, the task is
cancelled only while it waits inside `with watchdog:`, and the cancellation
comes out of that block as `TimeoutError`.
"""

from __future__ import annotations

import asyncio
from types import TracebackType


class Watchdog:
    def __init__(self, at: float) -> None:
        self._loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        self._task = task
        self.at = at  # the loop's time; set it later as the stream shows life
        self._timer: asyncio.TimerHandle | None = None
        self._waiting = False
        self._fired = False

    def __enter__(self) -> None:
        self._waiting = True
        if self._timer is None:
            self._timer = self._loop.call_at(self.at, self._fire)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._waiting = False
        if self._fired:
            self._fired = False
            if self._task.uncancel() == 0 and exc_type is asyncio.CancelledError:
                raise TimeoutError from None

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _fire(self) -> None:
        self._timer = None
        if self._loop.time() < self.at:
            self._timer = self._loop.call_at(self.at, self._fire)
        elif self._waiting:
            self._fired = True
            self._task.cancel()
