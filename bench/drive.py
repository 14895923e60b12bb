"""The load: chat turns over glmweb's WebSocket, and the same replies straight from the fake.

Every token is timed twice: `bench.fake` logs when it wrote token i, and the
client notes when the text containing token i arrived. The difference is the
per-token latency; the direct client measures the same thing without glmweb in
between, so relay minus direct is what glmweb adds.
"""

from __future__ import annotations

import asyncio
import json
import math
import statistics
import time
import uuid
from dataclasses import dataclass, field
from itertools import accumulate, pairwise
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect

from bench.fake_upstream import Scenario, content_tokens
from bench.servers import cpu_seconds, rss_bytes

EVENT_TIMEOUT = 20.0
OPEN_AT_ONCE = 50


@dataclass
class Plan:
    """What every stream of one scenario asks the fake for."""

    tokens: int
    delay: float

    def message(self) -> tuple[str, str]:
        """A unique message (the key of its send log) carrying the scenario."""
        key = uuid.uuid4().hex
        knobs = json.dumps({"tokens": self.tokens, "reasoning_tokens": 0, "delay": self.delay})
        return key, f"[[fake {knobs}]] bench {key}"

    def token_ends(self) -> list[int]:
        words = content_tokens(Scenario(tokens=self.tokens, reasoning_tokens=0))
        return list(accumulate(len(word) for word in words))

    def text(self) -> str:
        return "".join(content_tokens(Scenario(tokens=self.tokens, reasoning_tokens=0)))


@dataclass
class Stream:
    """One reply as the client saw it."""

    message: str
    sent_at: float = 0.0
    first_at: float | None = None
    arrivals: list[float] = field(default_factory=list)
    text: list[str] = field(default_factory=list)
    error: str = ""

    received: int = 0

    def take(self, content: str, ends: list[int], now: float) -> None:
        """Text arrived at `now`: every token it completes arrived then."""
        if self.first_at is None:
            self.first_at = now
        self.text.append(content)
        self.received += len(content)
        while len(self.arrivals) < len(ends) and ends[len(self.arrivals)] <= self.received:
            self.arrivals.append(now)


# --- relay (glmweb) and direct (fake) clients ---------------------------------


class Sockets:
    """Open chat sockets to glmweb workers, spread over the benchmark's users."""

    def __init__(self, urls: list[str], cookies: list[str]) -> None:
        self.urls = urls
        self.cookies = cookies

    async def open(self, count: int) -> list[ClientConnection]:
        gate = asyncio.Semaphore(OPEN_AT_ONCE)

        async def one(index: int) -> ClientConnection:
            base = self.urls[index % len(self.urls)]
            cookie = self.cookies[index % len(self.cookies)]
            async with gate:
                return await connect(
                    base.replace("http://", "ws://") + "/ws/chat/",
                    origin=base,  # type: ignore[arg-type]
                    additional_headers={"Cookie": f"sessionid={cookie}"},
                    max_size=None,
                    open_timeout=30,
                    ping_interval=None,
                )

        return list(await asyncio.gather(*(one(i) for i in range(count))))


async def close_all(sockets: list[ClientConnection]) -> None:
    await asyncio.gather(*(socket.close() for socket in sockets), return_exceptions=True)


# Fewer streams than this use less memory than the worker's RSS wanders by on
# its own, so their figure per stream would be noise (it came out negative).
RSS_MIN_STREAMS = 50


def deadline_for(plan: Plan) -> float:
    """When a scenario's streams give up: three times the reply's length, plus 20 s."""
    return time.monotonic() + plan.tokens * plan.delay * 3 + 20


async def relay_turn(
    socket: ClientConnection, plan: Plan, ends: list[int], deadline: float | None = None
) -> Stream:
    deadline = deadline or deadline_for(plan)
    key, message = plan.message()
    stream = Stream(message=message)
    frame = {"type": "send", "conversation": None, "content": message, "client_id": key}
    stream.sent_at = time.monotonic()
    try:
        await socket.send(json.dumps(frame))
        while True:
            wait = min(EVENT_TIMEOUT, deadline - time.monotonic())
            event = json.loads(await asyncio.wait_for(socket.recv(), max(wait, 0.001)))
            now = time.monotonic()
            kind = event["type"]
            if kind == "delta" and "content" in event:
                stream.take(event["content"], ends, now)
            elif kind == "done":
                return stream
            elif kind == "error":
                stream.error = f"{event.get('code')}: {event.get('message')}"
                return stream
    except TimeoutError:
        stream.error = "no event before the deadline"
        return stream
    except Exception as error:  # a dropped socket is a failed stream
        stream.error = f"{type(error).__name__}: {error}"
        return stream


async def direct_turn(
    client: httpx.AsyncClient, upstream_url: str, plan: Plan, ends: list[int]
) -> Stream:
    _, message = plan.message()
    stream = Stream(message=message)
    body = {
        "model": "glm-5",
        "messages": [{"role": "user", "content": message}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    headers = {"Authorization": "Bearer bench-key", "Accept": "text/event-stream"}
    stream.sent_at = time.monotonic()
    try:
        async with client.stream(
            "POST", f"{upstream_url}/chat/completions", json=body, headers=headers
        ) as response:
            buffer = b""
            async for data in response.aiter_bytes():
                now = time.monotonic()
                buffer += data
                *events, buffer = buffer.split(b"\n\n")
                for raw in events:
                    payload = raw.removeprefix(b"data: ")
                    if payload == b"[DONE]":
                        return stream
                    chunk = json.loads(payload)
                    choices = chunk.get("choices") or [{}]
                    content = (choices[0].get("delta") or {}).get("content")
                    if content:
                        stream.take(content, ends, now)
        stream.error = "stream ended without [DONE]"
    except Exception as error:
        stream.error = f"{type(error).__name__}: {error}"
    return stream


def direct_client() -> httpx.AsyncClient:
    # A fresh client per burst: the baseline must not inherit an earlier burst's pool.
    return httpx.AsyncClient(
        timeout=httpx.Timeout(EVENT_TIMEOUT),
        limits=httpx.Limits(max_connections=None, max_keepalive_connections=None),
        trust_env=False,
    )


# --- measuring ------------------------------------------------------------------


def percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 2)


class Sampler:
    """CPU and peak RSS of the workers over a span of time."""

    def __init__(self, pids: list[int]) -> None:
        self.pids = pids
        self.peak = 0
        self._task: asyncio.Task[None] | None = None

    def rss(self) -> int:
        return sum(rss_bytes(pid) for pid in self.pids)

    def cpu(self) -> float:
        return sum(cpu_seconds(pid) for pid in self.pids)

    async def __aenter__(self) -> Sampler:
        self.rss_before = self.rss()
        self.cpu_before = self.cpu()
        self.started = time.monotonic()
        self._task = asyncio.create_task(self._watch())
        return self

    async def _watch(self) -> None:
        while True:
            self.peak = max(self.peak, self.rss())
            await asyncio.sleep(0.2)

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._task is not None
        self._task.cancel()
        self.cpu_used = self.cpu() - self.cpu_before
        self.wall = time.monotonic() - self.started
        self.peak = max(self.peak, self.rss())


async def send_log(upstream_url: str) -> dict[str, list[float]]:
    async with httpx.AsyncClient(timeout=60, trust_env=False) as client:
        response = await client.get(f"{upstream_url}/_fake/sendlog")
        return response.json()


def summarize(streams: list[Stream], sent: dict[str, list[float]], plan: Plan) -> dict[str, Any]:
    """Delivery, first-token and per-token figures of one side of a scenario."""
    expected = plan.text()
    ttft, per_token, errors = [], [], []
    delivered = sent_tokens = in_order = 0
    for stream in streams:
        times = sent.get(stream.message, [])
        sent_tokens += len(times)
        delivered += len(stream.arrivals)
        in_order += "".join(stream.text) == expected
        if stream.error:
            errors.append(stream.error)
        if stream.first_at is not None:
            ttft.append(stream.first_at - stream.sent_at)
        per_token.extend(
            arrived - times[i] for i, arrived in enumerate(stream.arrivals[: len(times)])
        )
    return {
        "streams": len(streams),
        "tokens_expected": len(streams) * plan.tokens,
        "tokens_sent": sent_tokens,
        "tokens_delivered": delivered,
        "streams_complete_in_order": in_order,
        "errors": len(errors),
        "error_samples": sorted(set(errors))[:5],
        "ttft_ms": {"p50": ms(percentile(ttft, 50)), "p99": ms(percentile(ttft, 99))},
        "token_latency_ms": {
            "p50": ms(percentile(per_token, 50)),
            "p99": ms(percentile(per_token, 99)),
        },
    }


def added(relay: dict[str, Any], direct: dict[str, Any], figure: str) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for p in ("p50", "p99"):
        a, b = relay[figure][p], direct[figure][p]
        out[p] = None if a is None or b is None else round(a - b, 2)
    return out


# --- scenarios ---------------------------------------------------------------------


@dataclass
class Target:
    sockets: Sockets
    upstream_url: str
    pids: list[int]


async def run_direct(target: Target, count: int, plan: Plan, turns: int = 1) -> dict[str, Any]:
    ends = plan.token_ends()
    async with direct_client() as client:
        streams: list[Stream] = []
        for _ in range(turns):
            streams += await asyncio.gather(
                *(direct_turn(client, target.upstream_url, plan, ends) for _ in range(count))
            )
    return summarize(streams, await send_log(target.upstream_url), plan)


async def run_relay(
    target: Target, count: int, plan: Plan, turns: int = 1, sockets: list[Any] | None = None
) -> dict[str, Any]:
    ends = plan.token_ends()
    opened = sockets is None
    sockets = sockets if sockets is not None else await target.sockets.open(count)
    try:
        async with Sampler(target.pids) as sampler:
            streams: list[Stream] = []
            for _ in range(turns):
                deadline = deadline_for(plan)
                streams += await asyncio.gather(
                    *(relay_turn(socket, plan, ends, deadline) for socket in sockets[:count])
                )
    finally:
        if opened:
            await close_all(sockets)
    result = summarize(streams, await send_log(target.upstream_url), plan)
    result["server_cpu_s"] = round(sampler.cpu_used, 3)
    result["cpu_us_per_token"] = (
        round(sampler.cpu_used / result["tokens_delivered"] * 1e6, 1)
        if result["tokens_delivered"]
        else None
    )
    result["wall_s"] = round(sampler.wall, 2)
    result["rss_before_mb"] = round(sampler.rss_before / 2**20, 1)
    result["rss_peak_mb"] = round(sampler.peak / 2**20, 1)
    result["rss_kb_per_stream"] = (
        round((sampler.peak - sampler.rss_before) / count / 1024, 1)
        if count >= RSS_MIN_STREAMS
        else None
    )
    return result


async def compare(
    target: Target, count: int, plan: Plan, *, turns: int = 1, relay_bursts: int = 1
) -> dict[str, Any]:
    """The direct baseline, then the same load through glmweb (bursts back to back)."""
    direct = await run_direct(target, count, plan, turns)
    sockets = await target.sockets.open(count)
    try:
        bursts = [
            await run_relay(target, count, plan, turns, sockets=sockets)
            for _ in range(relay_bursts)
        ]
    finally:
        await close_all(sockets)
    result: dict[str, Any] = {
        "streams": count,
        "tokens_per_stream": plan.tokens,
        "tokens_per_second": round(1 / plan.delay) if plan.delay else None,
        "turns_per_stream": turns,
        "direct": direct,
    }
    for index, relay in enumerate(bursts):
        relay["ttft_added_ms"] = added(relay, direct, "ttft_ms")
        relay["token_latency_added_ms"] = added(relay, direct, "token_latency_ms")
        result["relay" if index == 0 else f"relay_burst{index + 1}"] = relay
    return result


async def idle_sockets(target: Target, count: int, batches: int = 5) -> dict[str, Any]:
    """RSS per open idle socket: growth per socket as batches open one after another.

    One difference before and after opening them all measured the heap as much
    as the sockets: the worker gave freed memory back meanwhile, and on
    PostgreSQL the figure came out negative (-33 to -83 KB). Batches kept open
    show that the first ones reuse memory the worker freed earlier (0-5 KB a
    socket) before new memory is needed (28-41 KB on PostgreSQL), so the figure
    is the median of the later half of the batches; all of them are reported.
    """
    size = max(1, count // (batches + 1))
    # The first batch stays open unmeasured: the worker's first sockets grow
    # buffers and caches that it keeps.
    sockets = await target.sockets.open(size)
    await asyncio.sleep(1.0)
    sampler = Sampler(target.pids)
    sizes = [sampler.rss()]
    try:
        for _ in range(batches):
            sockets += await target.sockets.open(size)
            await asyncio.sleep(0.5)
            sizes.append(sampler.rss())
    finally:
        await close_all(sockets)
    growth = [after - before for before, after in pairwise(sizes)]
    return {
        "sockets": size * batches,
        "rss_before_mb": round(sizes[0] / 2**20, 1),
        "rss_after_mb": round(sizes[-1] / 2**20, 1),
        "kb_per_socket": round(statistics.median(growth[len(growth) // 2 :]) / size / 1024, 1),
        "kb_per_socket_by_batch": [round(grew / size / 1024, 1) for grew in growth],
    }


async def leak_check(target: Target, turns: int, concurrency: int) -> dict[str, Any]:
    """RSS before and after `turns` short back-to-back turns."""
    plan = Plan(tokens=20, delay=0.0)
    ends = plan.token_ends()
    sockets = await target.sockets.open(concurrency)
    sampler = Sampler(target.pids)
    try:
        # Warm up first: the first turns fill caches that are not leaks.
        for _ in range(3):
            await asyncio.gather(*(relay_turn(socket, plan, ends) for socket in sockets))
        await asyncio.sleep(0.5)
        before = sampler.rss()
        errors = 0
        done = 0
        while done < turns:
            batch = sockets[: min(concurrency, turns - done)]
            streams = await asyncio.gather(*(relay_turn(socket, plan, ends) for socket in batch))
            errors += sum(1 for stream in streams if stream.error)
            done += len(batch)
        await asyncio.sleep(0.5)
        after = sampler.rss()
    finally:
        await close_all(sockets)
    await send_log(target.upstream_url)  # drop the log
    return {
        "turns": turns,
        "errors": errors,
        "rss_before_mb": round(before / 2**20, 1),
        "rss_after_mb": round(after / 2**20, 1),
        "growth_mb": round((after - before) / 2**20, 1),
        "growth_kb_per_turn": round((after - before) / turns / 1024, 2),
    }


async def probe(
    target: Target,
    steps: list[int],
    limit_ms: float,
    time_left: float,
    measured: dict[int, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The largest concurrency whose per-token p99 (relay, absolute) stays within the limit.

    Steps already run as scenarios (200 tokens at 50 tok/s) are reused from `measured`.
    """
    plan = Plan(tokens=200, delay=0.02)
    tried: list[dict[str, Any]] = []
    best = 0
    deadline = time.monotonic() + time_left
    for count in sorted(set(steps) | set(measured or {})):
        if time.monotonic() > deadline:
            break
        relay = (measured or {}).get(count) or await run_relay(target, count, plan)
        p99 = relay["token_latency_ms"]["p99"]
        ok = (
            relay["errors"] == 0
            and relay["tokens_delivered"] == relay["tokens_expected"]
            and p99 is not None
            and p99 <= limit_ms
        )
        tried.append(
            {
                "streams": count,
                "token_latency_p99_ms": p99,
                "ttft_p99_ms": relay["ttft_ms"]["p99"],
                "errors": relay["errors"],
                "delivered": f"{relay['tokens_delivered']}/{relay['tokens_expected']}",
                "cpu_us_per_token": relay["cpu_us_per_token"],
                "ok": ok,
            }
        )
        if not ok:
            break
        best = count
    return {"limit_ms": limit_ms, "sustained_streams": best, "steps": tried}
