"""Where one worker's CPU goes during a 200-stream burst: py-spy, summarised.

py-spy attaches to the worker for the burst only (after logins and a warm-up),
samples 200 times a second, skips idle threads, and writes collapsed stacks;
this module adds them up by the function on top of each stack (self time) and
by the package that function lives in.
"""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench import drive
from bench.servers import glmweb, login_cookie

AREAS = [
    ("glmweb (chat/, glmweb/)", re.compile(r"[/(]chat/|[/(]glmweb/")),
    ("channels + channels_redis", re.compile(r"channels(_redis)?/")),
    ("daphne + autobahn + twisted (WebSocket server)", re.compile(r"daphne/|autobahn/|twisted/")),
    (
        "httpx + httpcore + h11 + anyio (upstream client)",
        re.compile(r"httpx/|httpcore/|h11/|anyio/"),
    ),
    ("asyncio (event loop)", re.compile(r"asyncio/")),
    ("asgiref (sync_to_async)", re.compile(r"asgiref/")),
    ("django", re.compile(r"django/")),
    ("json", re.compile(r"json/")),
    ("redis", re.compile(r"redis/")),
]


def area_of(frame: str) -> str:
    for name, pattern in AREAS:
        if pattern.search(frame):
            return name
    return "other (stdlib, C, interpreter)"


def summarise(raw: str) -> dict[str, Any]:
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    areas: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        # "func (path/file.py:123)" -> "func (path/file.py)": add up a function's lines.
        frames = [re.sub(r":\d+\)$", ")", frame) for frame in stack.split(";")]
        top = frames[-1]
        total += int(count)
        own[top] += int(count)
        areas[area_of(top)] += int(count)
        for frame in set(frames):
            inclusive[frame] += int(count)
    if not total:
        return {"error": "py-spy collected no samples", "samples": 0}

    def shares(counter: Counter[str], n: int) -> list[tuple[str, float]]:
        return [(name, round(c / total * 100, 1)) for name, c in counter.most_common(n)]

    return {
        "samples": total,
        "areas": shares(areas, 12),
        "self": shares(own, 25),
        "inclusive": shares(inclusive, 60),
    }


def run(upstream_url: str, settings: Any, kind: str = "sqlite") -> dict[str, Any]:
    streams = 200 if not settings.quick else 5
    output = Path(tempfile.gettempdir()) / f"glmweb-bench-profile-{kind}.txt"
    output.unlink(missing_ok=True)
    py_spy = str(Path(sys.executable).parent / "py-spy")
    with glmweb(kind, upstream_url, settings.sockets_per_user()) as app:
        users = app.create_users(settings.users)
        url = app.start_worker("bench-profile")
        cookies = [login_cookie(url, name) for name in users]
        target = drive.Target(drive.Sockets([url], cookies), upstream_url, list(app.pids))
        plan = drive.Plan(tokens=200, delay=0.02)
        asyncio.run(drive.run_relay(target, 10, plan))  # warm-up, not profiled
        # Attach only for the burst: logins (PBKDF2) and start-up stay out of the profile.
        command = [py_spy, "record", "--pid", str(app.pids[0]), "--format", "raw"]
        command += ["--rate", "200", "--nonblocking", "-o", str(output)]
        sampler = subprocess.Popen(
            command,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        time.sleep(1.0)  # py-spy attaching
        relay = asyncio.run(drive.run_relay(target, streams, plan))
        sampler.send_signal(signal.SIGINT)
        _, error = sampler.communicate(timeout=30)
    if not output.exists():
        return {"error": f"py-spy wrote no profile: {error.decode()[-300:]}"}
    summary = summarise(output.read_text())
    summary["backend"] = kind
    summary["raw"] = str(output)
    summary["relay"] = {
        key: relay[key]
        for key in ("tokens_delivered", "tokens_expected", "errors", "token_latency_ms")
    }
    summary["cpu_us_per_token"] = relay["cpu_us_per_token"]
    return summary
