"""Calls that arrive together run together: one trip to the database thread.

channels' ``database_sync_to_async`` runs a process's database calls on one
thread, one after another. When 200 chats start at once, each start waited for
the ones before it, and each paid its own BEGIN and COMMIT. ``batched`` runs the
calls that queue while a batch runs as the next batch, in one call (for turn
starts, one transaction: chat.turns.starting.begin_sends). With 200 streams
starting at once on one database thread, it took the first token's p99 from
+265 to +88 ms (bench/results/README.md, 1e6273d).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, Generic, TypeVar

from channels.db import database_sync_to_async

R = TypeVar("R")

# Each call's result, or the exception to raise for it, in order.
Outcomes = list[R | Exception]


def batched(
    many: Callable[[list[tuple[Any, ...]]], Outcomes[R]],
) -> Callable[..., Coroutine[Any, Any, R]]:
    """A coroutine function whose calls queued while a batch runs run as one.

    ``many`` gets the queued calls' arguments and returns each one's result or
    the exception to raise for it, in order. A call arriving while no batch
    runs goes at once, alone.
    """
    return _Batches(many).call


class _Batches(Generic[R]):
    def __init__(self, many: Callable[[list[tuple[Any, ...]]], Outcomes[R]]) -> None:
        self.many = database_sync_to_async(many)
        self.queued: list[tuple[tuple[Any, ...], asyncio.Future[R]]] = []
        self.runner: asyncio.Task[None] | None = None

    async def call(self, *args: Any) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self.queued.append((args, future))
        if self.runner is None or self.runner.done():
            self.runner = asyncio.ensure_future(self.run())
        return await future

    async def run(self) -> None:
        while self.queued:
            batch, self.queued = self.queued, []
            try:
                outcomes = await self.many([args for args, _ in batch])
            except Exception as error:  # the connection, say: every call of the batch fails
                outcomes = [error] * len(batch)
            for (_, future), outcome in zip(batch, outcomes, strict=True):
                if future.done():  # its caller was cancelled
                    continue
                if isinstance(outcome, Exception):
                    future.set_exception(outcome)
                else:
                    future.set_result(outcome)
