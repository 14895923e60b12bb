"""Where the event loop's database calls run.

channels' ``database_sync_to_async`` runs all of a process's calls on one
thread, one after another. On SQLite that costs nothing, as it has one writer
at a time anyway. On PostgreSQL half of a call is the server's own work, and
while the server works the next call could be built: with 200 chats starting
at once each start waited for the ones before it (about 5 ms each) and the
last first token came a second late. There the calls share
GLMWEB_DATABASE_THREADS threads, each with its own connection: two took that
second to 0.89 s; three were slower still than one, the threads and the event
loop taking turns on the GIL. Calls for one person still take their row locks
in order (chat.limits), as they do across workers.

``batched`` goes further for calls that arrive in bursts (chats starting): the
calls that queue while the threads are busy run as one, in one transaction.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ParamSpec, TypeVar

from channels.db import DatabaseSyncToAsync
from django.conf import settings
from django.db import connections

P = ParamSpec("P")
R = TypeVar("R")


def database_call(func: Callable[P, R]) -> Callable[P, Awaitable[R]]:
    """``func`` as a coroutine function whose calls run on a database thread."""

    @functools.wraps(func)
    async def call(*args: P.args, **kwargs: P.kwargs) -> R:
        threads = _threads()
        if threads is None:
            return await DatabaseSyncToAsync(func)(*args, **kwargs)
        return await threads.run(func, *args, **kwargs)

    return call


def batched(many: Callable[[list[tuple[Any, ...]]], list[Any]]) -> Callable[..., Awaitable[Any]]:
    """A coroutine function whose calls queued while the threads are busy run as one.

    ``many`` gets the queued calls' arguments and returns each one's result or
    the exception to raise for it, in order. A call finding a thread free runs
    at once, alone.
    """
    return _Batches(database_call(many)).call


class _Batches:
    def __init__(self, many: Callable[[list[tuple[Any, ...]]], Awaitable[list[Any]]]) -> None:
        self.many = many
        self.queued: list[tuple[tuple[Any, ...], asyncio.Future[Any]]] = []
        self.runners: set[asyncio.Task[None]] = set()

    async def call(self, *args: Any) -> Any:
        future = asyncio.get_running_loop().create_future()
        self.queued.append((args, future))
        threads = _threads()
        if len(self.runners) < (1 if threads is None else len(threads.executors)):
            runner = asyncio.ensure_future(self.run())
            self.runners.add(runner)
            runner.add_done_callback(self.runners.discard)
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


class _Threads:
    """Single-thread executors, each call given to the one with the least waiting."""

    def __init__(self, count: int) -> None:
        self.executors = [
            ThreadPoolExecutor(1, thread_name_prefix=f"database-{i}") for i in range(count)
        ]
        # Only the event loop's thread counts, so plain integers do.
        self.waiting = [0] * count

    async def run(self, func: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        index = min(range(len(self.executors)), key=self.waiting.__getitem__)
        call = DatabaseSyncToAsync(func, thread_sensitive=False, executor=self.executors[index])
        self.waiting[index] += 1
        try:
            return await call(*args, **kwargs)
        finally:
            self.waiting[index] -= 1

    def close_connections(self) -> None:
        for executor in self.executors:
            executor.submit(connections.close_all).result()


@functools.cache
def _threads() -> _Threads | None:
    count = settings.GLMWEB_DATABASE_THREADS
    if connections["default"].vendor != "postgresql" or count < 2:
        return None
    return _Threads(count)


async def on_every_thread(func: Callable[[], R]) -> list[R]:
    """Call ``func`` once on each database thread (tests: capturing queries)."""
    threads = _threads()
    if threads is None:
        return [await DatabaseSyncToAsync(func)()]
    return [
        await DatabaseSyncToAsync(func, thread_sensitive=False, executor=executor)()
        for executor in threads.executors
    ]


def close_connections() -> None:
    """Close the database threads' connections (before a test database is dropped)."""
    if (threads := _threads()) is not None:
        threads.close_connections()
