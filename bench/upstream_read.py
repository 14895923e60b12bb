"""`python -m bench.upstream_read`: what reading a streamed reply costs, and where.

The relay's CPU per token is mostly spent reading the upstream. This measures
that part alone, in this process, against the fake upstream in its own process:
N streams of T tokens at R tokens a second, read two ways, each timed by this
process's CPU time per token:

- httpx: httpx's streamed body as it comes (`aiter_bytes`), no parsing: the floor;
- glmweb: `chat.upstream.stream_chat_batches` on the same httpx client path,
  with the SSE parsing, the watchdog and typed events out;
- glmweb paced: the same, each connection read at most once per 50 ms
  (`read_interval`, as the worker reads: `GLMWEB_COALESCE_SECONDS`).

The difference is glmweb's own cost per token. Only differences measured in
one run mean anything: the machine is shared, so the ways are interleaved.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import resource
import time
from collections.abc import Awaitable, Callable

import httpx

from bench.drive import Plan
from bench.servers import fake_upstream
from chat import upstream


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def request_body(plan: Plan) -> dict[str, object]:
    _, content = plan.message()
    return {"model": "glm-5", "stream": True, "messages": [{"role": "user", "content": content}]}


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
    paced = dataclasses.replace(config, read_interval=0.05)
    # The very client stream_chat_batches uses: the two ways differ only above it.
    client = upstream.get_client(config)

    plan = Plan(tokens, delay)
    ways: dict[str, Callable[[], Awaitable[int]]] = {
        "httpx": lambda: read_with_httpx(client, config, request_body(plan)),
        "glmweb": lambda: read_with_glmweb(config, request_body(plan)),
        "glmweb paced": lambda: read_with_glmweb(paced, request_body(plan)),
    }
    results: dict[str, list[dict[str, float]]] = {name: [] for name in ways}
    # Interleaved, so a machine that slows down mid-run slows every way alike.
    for _ in range(rounds):
        for name, read_one in ways.items():
            results[name].append(await one_round(read_one, streams, tokens))
    await upstream.close_clients()
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
