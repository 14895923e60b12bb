"""The worker a deployment runs (python -m glmweb.serve): daphne on uvloop."""

from __future__ import annotations

import signal
from pathlib import Path

import httpx

from tests.servers import glmweb_app


def test_a_worker_serves_on_uvloop_and_stops_on_sigterm() -> None:
    with glmweb_app("http://127.0.0.1:9") as app:
        url = app.start_worker("w")
        worker = app.workers["w"]

        assert httpx.get(f"{url}/accounts/login/").status_code == 200
        assert "uvloop" in Path(f"/proc/{worker.pid}/maps").read_text()

        app.kill_worker("w", signal.SIGTERM)
        assert worker.returncode == 0
