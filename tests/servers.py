"""Real servers for end-to-end tests: glmweb under daphne, with its own database.

The processes started here are what a deployment runs: daphne with the
project's ASGI app, talking to the fake upstream over loopback, on SQLite or
on PostgreSQL + Redis when DATABASE_URL / REDIS_URL point at live servers.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.servers import command_tail, free_port, wait_for_http

ROOT = Path(__file__).resolve().parent.parent

# Settings as a production site sets them, for `check --deploy`.
PRODUCTION = {
    "DEBUG": "false",
    "SECRET_KEY": "x" * 64 + "production-like-secret-key-for-the-check-only",
    "ALLOWED_HOSTS": "chat.example.com",
}


def deploy_check(**env: str) -> subprocess.CompletedProcess[str]:
    """`manage.py check --deploy` failing on warnings, with PRODUCTION and ``env`` set."""
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env={**os.environ, **PRODUCTION, **env},
        capture_output=True,
        text=True,
        check=False,
    )


PASSWORD = "a long enough test password 1"


@contextmanager
def fresh_database() -> Iterator[str]:
    """A DATABASE_URL for a new, empty database of the kind the tests run on."""
    base = os.environ.get("DATABASE_URL", "")
    if base.startswith("postgres"):
        import psycopg

        name = f"glmweb_e2e_{uuid.uuid4().hex[:10]}"
        server = base.rsplit("/", 1)[0]
        with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        try:
            yield f"{server}/{name}"
        finally:
            with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    else:
        with tempfile.TemporaryDirectory() as folder:
            yield f"sqlite:///{folder}/e2e.sqlite3"


@dataclass
class App:
    """glmweb's environment plus the daphne workers started on it."""

    env: dict[str, str]
    workers: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)

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
            raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{result.stderr}")
        return result.stdout

    def create_user(self, username: str, *, staff: bool = False) -> None:
        self.manage(
            "shell",
            "-c",
            "from django.contrib.auth import get_user_model; "
            f"get_user_model().objects.create_user({username!r}, password={PASSWORD!r}, "
            f"is_staff={staff}, is_superuser={staff})",
        )

    def start_worker(self, name: str, port: int | None = None) -> str:
        port = port or self.ports.get(name) or free_port()
        env = {**self.env, "GLMWEB_WORKER_ID": name}
        self.workers[name] = subprocess.Popen(
            command_tail(port),
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=open(Path(tempfile.gettempdir()) / f"glmweb-{name}-{port}.log", "ab"),  # noqa: SIM115
        )
        self.ports[name] = port
        url = f"http://127.0.0.1:{port}"
        wait_for_http(f"{url}/healthz")
        return url

    def kill_worker(self, name: str, sig: int = signal.SIGKILL) -> None:
        process = self.workers.pop(name)
        process.send_signal(sig)
        process.wait(timeout=10)

    def stop(self) -> None:
        for name in list(self.workers):
            self.kill_worker(name, signal.SIGTERM)


@contextmanager
def glmweb_app(upstream_url: str, **extra_env: str) -> Iterator[App]:
    """A migrated database and the environment to run glmweb workers on it."""
    with fresh_database() as database_url:
        env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "UPSTREAM_BASE_URL": upstream_url,
            "UPSTREAM_API_KEY": "test-key-not-a-real-one",
            "DEBUG": "true",
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "LOG_LEVEL": "WARNING",
            "REDIS_PREFIX": f"glmweb-test-{uuid.uuid4().hex[:8]}",
            # Off unless a test asks (tests/test_browser_sidebar.py): a title
            # request would add to the fake upstream's requests.
            "GLMWEB_GENERATED_TITLES": "false",
            **extra_env,
        }
        app = App(env=env)
        app.manage("migrate", "--noinput")
        try:
            yield app
        finally:
            app.stop()


def login_cookie(base_url: str, username: str, password: str = PASSWORD) -> str:
    """Log in through the real login form; returns the session cookie."""
    with httpx.Client(base_url=base_url) as client:
        client.get("/accounts/login/")
        response = client.post(
            "/accounts/login/",
            data={
                "username": username,
                "password": password,
                "csrfmiddlewaretoken": client.cookies["csrftoken"],
            },
            headers={"Referer": f"{base_url}/accounts/login/"},
        )
        if response.status_code != 302:
            raise RuntimeError(f"login failed: {response.status_code}")
        return client.cookies["sessionid"]


class RemoteSocket:
    """A chat socket to a running worker over real loopback, as a browser opens it."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection

    @classmethod
    async def open(cls, base_url: str, cookie: str) -> RemoteSocket:
        import websockets

        ws_url = base_url.replace("http://", "ws://") + "/ws/chat/"
        connection = await websockets.connect(
            ws_url,
            origin=base_url,
            additional_headers={"Cookie": f"sessionid={cookie}"},
            max_size=None,
        )
        return cls(connection)

    async def send(self, **frame: Any) -> None:
        await self.connection.send(json.dumps(frame))

    async def event(self, timeout: float = 15) -> dict[str, Any]:
        return json.loads(await asyncio.wait_for(self.connection.recv(), timeout))

    async def until(self, *types: str, timeout: float = 15) -> list[dict[str, Any]]:
        events = []
        while True:
            events.append(await self.event(timeout))
            if events[-1]["type"] in types:
                return events

    async def text_until(self, chars: int) -> list[dict[str, Any]]:
        """The reply's events until at least ``chars`` of its text have arrived."""
        # Here, not at the top: scripts/screenshots.py imports this module without Django set up.
        from tests.conftest import text_of

        received = await self.until("delta")
        while len(text_of(received)) < chars:
            received += await self.until("delta")
        return received

    async def close(self) -> None:
        await self.connection.close()


def transcript_in(html: str) -> list[dict[str, Any]]:
    """The transcript a chat page hands to its script (json_script data)."""
    import re

    found = re.search(
        r'<script id="transcript[^"]*" type="application/json">(.*?)</script>', html, re.S
    )
    if found is None:
        raise AssertionError("no transcript data in the page")
    return json.loads(found.group(1))


def transcript_of(base_url: str, cookie: str, conversation: str) -> list[dict[str, Any]]:
    """The transcript of a conversation's page, as its owner opens it."""
    page = httpx.get(f"{base_url}/c/{conversation}/", cookies={"sessionid": cookie}).text
    return transcript_in(page)
