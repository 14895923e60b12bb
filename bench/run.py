"""`python -m bench`: start the fake and glmweb, run the scenarios, print the table."""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import signal
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench import drive, profile, report
from bench.servers import (
    fake_upstream,
    glmweb,
    login_cookie,
    postgres_and_redis_reachable,
    rss_bytes,
)

RESULTS = Path(__file__).resolve().parent / "results"


@dataclass
class Settings:
    """What a run does; --quick shrinks everything to a smoke test."""

    quick: bool
    users: int
    idle_sockets: int
    ttft_turns: int
    concurrency: list[int]
    bursts: int
    long_tokens: int
    long_delay: float
    leak_turns: int
    probe_steps: list[int]
    probe_seconds: float
    page_messages: int
    page_gets: int
    two_workers: bool
    profile: bool

    @property
    def max_streams(self) -> int:
        return max([*self.concurrency, *self.probe_steps, self.idle_sockets, 1])

    def sockets_per_user(self) -> int:
        return math.ceil(self.max_streams / self.users) + 10


def parse_args(argv: list[str] | None) -> tuple[Settings, argparse.Namespace]:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a smoke run: a few small streams")
    parser.add_argument("--backends", default="sqlite,postgres", help="sqlite,postgres")
    parser.add_argument("--leak-turns", type=int, help="turns in the leak check (1000)")
    parser.add_argument("--no-probe", action="store_true", help="skip the concurrency probe")
    parser.add_argument(
        "--probe-steps",
        default="25,50,100,200,300,500,700,1000",
        help="concurrency steps of the probe",
    )
    parser.add_argument("--probe-seconds", type=float, default=60, help="time cap of the probe")
    parser.add_argument(
        "--two-workers",
        action="store_true",
        help="also probe two daphne workers on PostgreSQL + Redis",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="py-spy profile of one worker during a 200-stream burst (SQLite)",
    )
    parser.add_argument("--concurrency", help="stream counts to compare (1,50,200,500)")
    parser.add_argument("--long-tokens", type=int, help="tokens of the long stream (20000)")
    parser.add_argument("--json", type=Path, default=RESULTS / "latest.json")
    args = parser.parse_args(argv)
    if args.quick:
        settings = Settings(
            quick=True,
            users=2,
            idle_sockets=10,
            ttft_turns=3,
            concurrency=[1, 5],
            bursts=2,
            long_tokens=500,
            long_delay=0.0005,
            leak_turns=args.leak_turns or 10,
            probe_steps=[],
            probe_seconds=0,
            page_messages=100,
            page_gets=3,
            two_workers=False,
            profile=args.profile,
        )
    else:
        settings = Settings(
            quick=False,
            users=20,
            idle_sockets=200,
            ttft_turns=20,
            concurrency=[1, 50, 200, 500],
            bursts=2,
            long_tokens=20_000,
            long_delay=0.00025,
            leak_turns=1000 if args.leak_turns is None else args.leak_turns,
            probe_steps=[] if args.no_probe else [int(n) for n in args.probe_steps.split(",")],
            probe_seconds=args.probe_seconds,
            page_messages=1000,
            page_gets=20,
            two_workers=args.two_workers,
            profile=args.profile,
        )
    if args.concurrency:
        settings.concurrency = [int(n) for n in args.concurrency.split(",")]
    if args.long_tokens:
        settings.long_tokens = args.long_tokens
    return settings, args


def main(argv: list[str] | None = None) -> int:
    settings, args = parse_args(argv)
    # Stopped from outside: unwind, so the workers, the fake and the database go too.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    started = time.monotonic()
    results: dict[str, Any] = {
        "when": time.strftime("%Y-%m-%d %H:%M:%S"),
        "command": "python -m bench " + " ".join(sys.argv[1:] if argv is None else argv),
        "quick": settings.quick,
        "backends": {},
        "notes": [],
    }
    with fake_upstream() as upstream_url:
        for kind in [name.strip() for name in args.backends.split(",") if name.strip()]:
            if kind == "postgres":
                why_not = postgres_and_redis_reachable()
                if why_not:
                    results["notes"].append(f"postgres+redis skipped: {why_not}")
                    continue
            label = "sqlite+memory" if kind == "sqlite" else "postgres+redis"
            print(f"== {label}", file=sys.stderr, flush=True)
            results["backends"][label] = run_backend(kind, upstream_url, settings)
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(results, indent=2))
        if settings.profile:
            print("== profile", file=sys.stderr, flush=True)
            results["profile"] = profile.run(upstream_url, settings)
        # Partial results survive a run stopped later on.
        args.json.parent.mkdir(parents=True, exist_ok=True)
    results["elapsed_s"] = round(time.monotonic() - started, 1)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2))
    print(report.table(results))
    print(f"\nJSON: {args.json}  ({results['elapsed_s']} s)")
    return 0


STARTED = time.monotonic()


def log(message: str) -> None:
    print(f"   {time.monotonic() - STARTED:5.0f} s  {message}", file=sys.stderr, flush=True)


def run_backend(kind: str, upstream_url: str, settings: Settings) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with glmweb(kind, upstream_url, settings.sockets_per_user()) as app:
        if app.collect_note:
            out["collectstatic"] = app.collect_note
        users = app.create_users(settings.users)
        url = app.start_worker("bench-1")
        cookies = [login_cookie(url, name) for name in users]
        log(f"worker up, {len(cookies)} users logged in")
        counts = json.loads(
            app.python(
                "bench.inproc",
                "--owner",
                users[0],
                "--messages",
                str(settings.page_messages),
                "--long-tokens",
                "2000",
            )
        )
        out["queries"] = {
            "turn_20_tokens": counts["turn_short"],
            "turn_2000_tokens": counts["turn_long"],
            "page": counts["page"],
        }
        out["page"] = time_page(url, cookies[0], counts["conversation"], settings)
        out["page"]["queries"] = counts["page"]["queries"]
        out["page"]["messages"] = settings.page_messages
        log("queries counted, page timed")
        target = drive.Target(drive.Sockets([url], cookies), upstream_url, list(app.pids))
        out.update(asyncio.run(scenarios(target, settings, two_workers=False)))
        if settings.two_workers and kind == "postgres" and settings.probe_steps:
            url2 = app.start_worker("bench-2")
            both = drive.Target(
                drive.Sockets([url, url2], cookies),
                upstream_url,
                list(app.pids),
            )
            log("probing two workers")
            out["probe_two_workers"] = asyncio.run(
                drive.probe(both, settings.probe_steps, 250, settings.probe_seconds)
            )
    return out


def time_page(url: str, cookie: str, conversation: str, settings: Settings) -> dict[str, Any]:
    timings = []
    with httpx.Client(base_url=url, cookies={"sessionid": cookie}, timeout=60) as client:
        for _ in range(settings.page_gets + 1):
            begun = time.monotonic()
            response = client.get(f"/c/{conversation}/")
            timings.append(time.monotonic() - begun)
            if response.status_code != 200:
                return {"error": f"GET /c/<id>/ answered {response.status_code}"}
    timings = timings[1:]  # the first request warms the templates
    return {
        "messages": settings.page_messages,
        "gets": len(timings),
        "p50_ms": round(statistics.median(timings) * 1000, 1),
        "max_ms": round(max(timings) * 1000, 1),
        "bytes": len(response.content),
    }


async def scenarios(
    target: drive.Target, settings: Settings, *, two_workers: bool
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    fast = drive.Plan(tokens=20, delay=0.0)
    await drive.run_relay(target, min(10, settings.users * 2), fast, turns=3)  # warm-up
    await asyncio.sleep(0.5)
    out["rss_idle_mb"] = round(sum(rss_bytes(pid) for pid in target.pids) / 2**20, 1)
    out["idle_sockets"] = await drive.idle_sockets(target, settings.idle_sockets)
    log(f"idle: {out['rss_idle_mb']} MB, {out['idle_sockets']['kb_per_socket']} KB/socket")

    # Short turns: only their first token is measured.
    out["first_token_1_stream"] = await drive.compare(
        target, 1, drive.Plan(tokens=3, delay=0.02), turns=settings.ttft_turns
    )
    log("first token, 1 stream: done")
    stream_plan = drive.Plan(tokens=200 if not settings.quick else 50, delay=0.02)
    for count in settings.concurrency:
        bursts = settings.bursts if count == 200 or (settings.quick and count > 1) else 1
        out[f"streams_{count}"] = await drive.compare(
            target, count, stream_plan, relay_bursts=bursts
        )
        relay = out[f"streams_{count}"]["relay"]
        log(
            f"{count} streams: delivered {relay['tokens_delivered']}/{relay['tokens_expected']}"
            f", errors {relay['errors']}, p99 token {relay['token_latency_ms']['p99']} ms"
        )
    out["long_stream"] = await drive.compare(
        target, 1, drive.Plan(tokens=settings.long_tokens, delay=settings.long_delay)
    )
    log("long stream: done")
    if settings.leak_turns:
        out["leak"] = await drive.leak_check(target, settings.leak_turns, concurrency=20)
        log(f"leak check: {out['leak']['growth_mb']} MB over {settings.leak_turns} turns")
    if settings.probe_steps:
        measured = {
            count: out[f"streams_{count}"]["relay"]
            for count in settings.concurrency
            if count > 1 and not settings.quick
        }
        out["probe"] = await drive.probe(
            target, settings.probe_steps, 250, settings.probe_seconds, measured
        )
        log(f"probe: {out['probe']['sustained_streams']} streams")
    return out
