"""Processes under test: the fake upstream and glmweb workers under daphne.

Bits of tests/servers.py, copied so the benchmark needs nothing from the tests.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "a long enough bench password 1"
POSTGRES_URL = os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_http(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1.0)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {timeout} s")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


@contextmanager
def fake_upstream() -> Iterator[str]:
    """bench.fake in its own process; yields its base URL."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.fake", "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}/v1"
        wait_for_http(f"{url}/_fake/requests")
        httpx.post(f"{url}/_fake/reset")
        yield url
    finally:
        process.terminate()
        process.wait(10)


def postgres_and_redis_reachable() -> str | None:
    """None when both answer, else why not."""
    try:
        import psycopg

        with psycopg.connect(POSTGRES_URL, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except Exception as error:
        return f"PostgreSQL at {POSTGRES_URL} unreachable: {error}"
    try:
        import redis

        redis.Redis.from_url(REDIS_URL, socket_timeout=3).ping()
    except Exception as error:
        return f"Redis at {REDIS_URL} unreachable: {error}"
    return None


@contextmanager
def fresh_database(kind: str) -> Iterator[str]:
    if kind == "postgres":
        import psycopg

        name = f"glmweb_bench_{uuid.uuid4().hex[:10]}"
        server = POSTGRES_URL.rsplit("/", 1)[0]
        with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        try:
            yield f"{server}/{name}"
        finally:
            with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    else:
        with tempfile.TemporaryDirectory(prefix="glmweb-bench-") as folder:
            yield f"sqlite:///{folder}/bench.sqlite3"


@dataclass
class Glmweb:
    """glmweb's production environment on a fresh database, and its daphne workers."""

    env: dict[str, str]
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    urls: list[str] = field(default_factory=list)
    pids: list[int] = field(default_factory=list)
    collect_note: str = ""

    def manage(self, *args: str) -> str:
        result = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"manage.py {args[0]} failed:\n{result.stderr[-3000:]}")
        return result.stdout

    def python(self, module: str, *args: str) -> str:
        result = subprocess.run(
            [sys.executable, "-m", module, *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"{module} failed:\n{result.stderr[-3000:]}")
        return result.stdout

    def create_users(self, count: int) -> list[str]:
        names = [f"bench{i:03d}" for i in range(count)]
        # One hash for all: a login still checks the password, creating them costs one.
        self.manage(
            "shell",
            "-c",
            "from django.contrib.auth import get_user_model; "
            "from django.contrib.auth.hashers import make_password; "
            f"hashed = make_password({PASSWORD!r}); User = get_user_model(); "
            f"User.objects.bulk_create([User(username=n, password=hashed) for n in {names!r}])",
        )
        return names

    def start_worker(self, name: str, *, profile_to: str | None = None) -> str:
        port = free_port()
        command = command_tail(port)
        if profile_to:
            # py-spy as daphne's parent: it may trace it without extra privileges.
            py_spy = str(Path(sys.executable).parent / "py-spy")
            command = [py_spy, "record", "--format", "raw", "-r", "100", "-o", profile_to]
            command += ["--", *command_tail(port)]
        log = Path(tempfile.gettempdir()) / f"glmweb-bench-{name}-{port}.log"
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env={**self.env, "GLMWEB_WORKER_ID": name},
            stdout=subprocess.DEVNULL,
            stderr=open(log, "ab"),  # noqa: SIM115
        )
        url = f"http://127.0.0.1:{port}"
        wait_for_http(f"{url}/healthz")
        self.workers.append(process)
        self.urls.append(url)
        self.pids.append(daphne_pid(process.pid) if profile_to else process.pid)
        return url

    def stop(self) -> None:
        # Signal daphne itself: a py-spy parent writes its profile when daphne ends.
        for pid in self.pids:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        for process in self.workers:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
        self.workers.clear()
        self.pids.clear()
        self.urls.clear()


def command_tail(port: int) -> list[str]:
    """The command of one glmweb worker on ``port``, as deployed (tests/servers.py too)."""
    return [
        sys.executable,
        "-m",
        "glmweb.serve",
        "-b",
        "127.0.0.1",
        "-p",
        str(port),
        "glmweb.asgi:application",
    ]


def daphne_pid(parent: int) -> int:
    """The child py-spy started (daphne), found by its parent pid."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == parent:
            return int(stat.parent.name)
    raise RuntimeError(f"no child of {parent}")


@contextmanager
def glmweb(kind: str, upstream_url: str, max_sockets_per_user: int) -> Iterator[Glmweb]:
    """A migrated fresh database (sqlite or postgres) and glmweb's production env on it."""
    with (
        fresh_database(kind) as database_url,
        tempfile.TemporaryDirectory(prefix="glmweb-static-") as static_root,
    ):
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "glmweb.settings",
            "DATABASE_URL": database_url,
            "DEBUG": "false",
            "SECRET_KEY": "bench-" + uuid.uuid4().hex * 2,
            "ALLOWED_HOSTS": "127.0.0.1",
            "SECURE_SSL_REDIRECT": "false",
            "SESSION_COOKIE_SECURE": "false",
            "CSRF_COOKIE_SECURE": "false",
            "SECURE_HSTS_SECONDS": "0",
            "STATIC_ROOT": static_root,
            "LOG_LEVEL": "WARNING",
            "UPSTREAM_API_KEY": "bench-key",
            "UPSTREAM_BASE_URL": upstream_url,
            # Every benchmark turn opens a new conversation, which in real use
            # asks for a title once per conversation, not once per turn.
            "GLMWEB_GENERATED_TITLES": "false",
            # Many sockets from a few benchmark accounts (the default is 20 per user).
            "GLMWEB_MAX_SOCKETS_PER_USER": str(max_sockets_per_user),
            # And many replies at once from each (the default is 3 per user).
            "GLMWEB_LIMIT_CONCURRENT_GENERATIONS": "0",
        }
        env.pop("REDIS_URL", None)
        if kind == "postgres":
            env["REDIS_URL"] = REDIS_URL
            env["REDIS_PREFIX"] = f"glmweb-bench-{uuid.uuid4().hex[:8]}"
        app = Glmweb(env=env)
        app.manage("migrate", "--noinput")
        try:
            app.manage("collectstatic", "--noinput")
        except RuntimeError as error:
            app.collect_note = "collectstatic failed under glmweb.settings: " + str(error)[-300:]
            app.manage("collectstatic", "--noinput", "--settings", "bench.collect_settings")
        try:
            yield app
        finally:
            app.stop()


def login_cookie(base_url: str, username: str) -> str:
    """Log in through the real login form; returns the session cookie."""
    with httpx.Client(base_url=base_url) as client:
        client.get("/accounts/login/")
        response = client.post(
            "/accounts/login/",
            data={
                "username": username,
                "password": PASSWORD,
                "csrfmiddlewaretoken": client.cookies["csrftoken"],
            },
            headers={"Referer": f"{base_url}/accounts/login/"},
        )
        if response.status_code != 302:
            raise RuntimeError(f"login of {username} failed: {response.status_code}")
        return client.cookies["sessionid"]


def to_json(value: object) -> str:
    return json.dumps(value, indent=2, sort_keys=False)
