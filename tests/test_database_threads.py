"""Where database calls from the event loop run (chat.db): side by side on
PostgreSQL, each thread with its own connection; taking turns on one thread on
SQLite. The PostgreSQL tests run whenever DATABASE_URL points at it (.ci/run
always sets it)."""

from __future__ import annotations

import asyncio
import os
import threading

import pytest
from django.db import connection

from chat.db import batched, database_call

on_postgresql = os.environ.get("DATABASE_URL", "").startswith("postgres")

pytestmark = pytest.mark.django_db(transaction=True)


@database_call
def backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


@pytest.mark.skipif(not on_postgresql, reason="needs DATABASE_URL on PostgreSQL")
async def test_on_postgresql_a_call_runs_while_another_waits() -> None:
    waiting_started, other_ran = threading.Event(), threading.Event()

    @database_call
    def wait_for_the_other() -> bool:
        waiting_started.set()
        return other_ran.wait(timeout=5)

    @database_call
    def run() -> None:
        other_ran.set()

    waiting = asyncio.ensure_future(wait_for_the_other())
    assert await asyncio.to_thread(waiting_started.wait, 5)
    await run()

    assert await waiting  # one after the other, it would wait its 5 s and fail


@pytest.mark.skipif(not on_postgresql, reason="needs DATABASE_URL on PostgreSQL")
async def test_on_postgresql_each_thread_keeps_its_own_connection() -> None:
    rounds = [await asyncio.gather(backend_pid(), backend_pid()) for _ in range(3)]

    assert len(set(rounds[0])) == 2  # two threads, two connections
    assert all(sorted(pids) == sorted(rounds[0]) for pids in rounds)  # reused, not reopened


@pytest.mark.skipif(on_postgresql, reason="SQLite takes one writer at a time anyway")
async def test_on_sqlite_calls_take_turns_on_one_thread() -> None:
    thread = database_call(threading.get_ident)

    idents = await asyncio.gather(*(thread() for _ in range(4)))

    assert len(set(idents)) == 1
    assert idents[0] != threading.get_ident()  # never the event loop's


async def test_calls_queued_while_a_batch_runs_run_as_the_next_batch() -> None:
    batches: list[list[int]] = []
    running, release = threading.Event(), threading.Event()

    def times_ten(calls: list[tuple[int]]) -> list[int | Exception]:
        batches.append([number for (number,) in calls])
        running.set()
        release.wait(timeout=5)
        return [ValueError(number) if number < 0 else number * 10 for (number,) in calls]

    call = batched(times_ten)
    first = asyncio.ensure_future(call(1))
    assert await asyncio.to_thread(running.wait, 5)
    rest = [asyncio.ensure_future(call(number)) for number in (2, -3, 4)]
    await asyncio.sleep(0.05)
    release.set()

    assert await first == 10
    outcomes = await asyncio.gather(*rest, return_exceptions=True)
    assert outcomes[0] == 20 and outcomes[2] == 40
    assert isinstance(outcomes[1], ValueError)  # only its own call fails
    assert batches == [[1], [2, -3, 4]]
