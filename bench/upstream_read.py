"""`python -m bench.upstream_read`: what reading a streamed reply costs, layer by layer.

The relay's CPU per token is mostly spent reading the upstream. This measures
that part alone, in this process, against the fake upstream in its own process:
N streams of T tokens at R tokens a second, read four ways, each timed by this
process's CPU time per token. The ways add one layer at a time:

- asyncio: a bare asyncio Protocol that only counts what arrives (the floor);
- asyncio, paced: the same, but after each read the socket is left alone for
  the coalescing interval, so the kernel joins the tokens that arrive meanwhile;
- httpx: httpx's streamed body, as it comes (what glmweb used before), no parsing;
- glmweb: `chat.upstream.stream_chat_batches`, the relay's own reader, typed events out;
- glmweb, paced: the same with the relay's `read_interval`: the socket is read
  at most once per frame interval, and what came meanwhile in one go.

Only differences measured in one run mean anything: the machine is shared.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import resource
import time
import urllib.parse
from collections.abc import Awaitable, Callable

import httpx

from bench.drive import Plan
from bench.servers import fake_upstream
from chat import upstream

LAST_CHUNK = b"0\r\n\r\n"
PACE_SECONDS = 0.05


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def request_body(plan: Plan) -> dict[str, object]:
    _, content = plan.message()
    return {"model": "glm-5", "stream": True, "messages": [{"role": "user", "content": content}]}


class Counting(asyncio.Protocol):
    """Counts reads until the body's last chunk; paced, it pauses after each read."""

    def __init__(self, pace: float) -> None:
        self.pace = pace
        self.reads = 0
        self.done = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.reads += 1
        if data.endswith(LAST_CHUNK):
            self.done.set_result(None)
        elif self.pace:
            self.transport.pause_reading()
            asyncio.get_running_loop().call_later(self.pace, self.transport.resume_reading)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(None)


async def read_with_protocol(url: str, body: dict[str, object], pace: float) -> int:
    parts = urllib.parse.urlsplit(url)
    payload = json.dumps(body).encode()
    head = (
        f"POST {parts.path}/chat/completions HTTP/1.1\r\nHost: {parts.netloc}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
    )
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_connection(
        lambda: Counting(pace), parts.hostname, parts.port
    )
    transport.write(head.encode() + payload)
    await protocol.done
    transport.close()
    return protocol.reads


async def read_with_httpx(
    client: httpx.AsyncClient, config: upstream.UpstreamConfig, body: dict[str, object]
) -> int:
    reads = 0
    async with client.stream("POST", config.url, json=body) as response:
        async for _ in response.aiter_bytes():
            reads += 1
    return reads


async def read_with_glmweb(config: upstream.UpstreamConfig, body: dict[str, object]) -> int:
    request = upstream.ChatRequest(model="glm-5", messages=body["messages"])  # type: ignore[arg-type]
    batches = 0
    async for _ in upstream.stream_chat_batches(request, config):
        batches += 1
    return batches


async def one_round(
    read_one: Callable[[], Awaitable[int]], streams: int, tokens: int
) -> dict[str, float]:
    cpu, wall = cpu_seconds(), time.monotonic()
    reads = await asyncio.gather(*(read_one() for _ in range(streams)))
    return {
        "cpu_us_per_token": round((cpu_seconds() - cpu) / (streams * tokens) * 1e6, 1),
        "reads_per_stream": round(sum(reads) / streams, 1),
        "wall_s": round(time.monotonic() - wall, 2),
    }


async def run(
    url: str, streams: int, tokens: int, delay: float, rounds: int
) -> dict[str, list[dict[str, float]]]:
    config = upstream.UpstreamConfig(base_url=url, api_key="bench-key")
    paced = dataclasses.replace(config, read_interval=PACE_SECONDS)
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=20)
    client = httpx.AsyncClient(limits=limits, trust_env=False)

    plan = Plan(tokens, delay)
    ways: dict[str, Callable[[], Awaitable[int]]] = {
        "asyncio": lambda: read_with_protocol(url, request_body(plan), 0),
        f"asyncio, paced {PACE_SECONDS * 1000:.0f} ms": lambda: read_with_protocol(
            url, request_body(plan), PACE_SECONDS
        ),
        "httpx": lambda: read_with_httpx(client, config, request_body(plan)),
        "glmweb": lambda: read_with_glmweb(config, request_body(plan)),
        f"glmweb, paced {PACE_SECONDS * 1000:.0f} ms": lambda: read_with_glmweb(
            paced, request_body(plan)
        ),
    }
    results: dict[str, list[dict[str, float]]] = {name: [] for name in ways}
    # Interleaved, so a machine that slows down mid-run slows every way alike.
    for _ in range(rounds):
        for name, read_one in ways.items():
            results[name].append(await one_round(read_one, streams, tokens))
    await upstream.close_clients()
    await client.aclose()
    return results


def table(
    results: dict[str, list[dict[str, float]]], streams: int, tokens: int, rate: float
) -> str:
    lines = [
        f"{streams} streams x {tokens} tokens at {rate:.0f} tok/s, CPU of this process per token",
        "| way | µs per token (each round) | reads per stream |",
        "|---|---|---|",
    ]
    for way, rounds in results.items():
        cpu = " / ".join(str(r["cpu_us_per_token"]) for r in rounds)
        lines.append(f"| {way} | {cpu} | {rounds[-1]['reads_per_stream']} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.upstream_read", description=__doc__)
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--rate", type=float, default=50, help="tokens a second per stream")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with fake_upstream() as url:
        results = asyncio.run(run(url, args.streams, args.tokens, 1 / args.rate, args.rounds))
    print(table(results, args.streams, args.tokens, args.rate))


if __name__ == "__main__":
    main()
