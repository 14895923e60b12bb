"""Where database calls from the event loop run: channels' database_sync_to_async,
one thread, never the event loop's; and chat.turns.batching, which runs the calls
that queue while a batch runs as one."""

from __future__ import annotations

import asyncio
import threading

import pytest
from channels.db import database_sync_to_async

from chat.turns.batching import batched

pytestmark = pytest.mark.django_db(transaction=True)


async def test_calls_take_turns_on_one_thread_apart_from_the_event_loop() -> None:
    thread = database_sync_to_async(threading.get_ident)

    idents = await asyncio.gather(*(thread() for _ in range(4)))

    assert len(set(idents)) == 1
    assert idents[0] != threading.get_ident()


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


async def test_a_batch_that_fails_fails_each_of_its_calls() -> None:
    def broken(calls: list[tuple[int]]) -> list[int | Exception]:
        raise ConnectionError("the database went away")

    call = batched(broken)
    outcomes = await asyncio.gather(call(1), call(2), return_exceptions=True)

    assert all(isinstance(outcome, ConnectionError) for outcome in outcomes)


async def test_a_call_as_a_batch_ends_still_runs() -> None:
    """A call made the moment the previous batch answered gets a runner of its own.

    The private scheduler this replaced counted a finished runner until its done
    callback ran, a loop turn after the caller woke up: a call in between waited
    for the next call, and the quick benchmark's second burst got no event for 20 s.
    """
    call = batched(lambda calls: [number for (number,) in calls])

    assert await call(1) == 1
    async with asyncio.timeout(2):  # awaited in this task's step, not in a new task
        assert await call(2) == 2
