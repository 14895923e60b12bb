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
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

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
