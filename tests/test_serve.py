"""The worker a deployment runs (python -m glmweb.serve): daphne on uvloop,
saving the replies it streams when it is stopped."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bench.fake_upstream import FakeUpstream, Scenario, content_tokens
from tests.conftest import text_of
from tests.servers import RemoteSocket, free_port, glmweb_app, login_cookie, transcript_of


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeUpstream]:
    with FakeUpstream().run_in_thread() as upstream:
        yield upstream


def test_a_worker_serves_on_uvloop_and_stops_on_sigterm(fake: FakeUpstream) -> None:
    with glmweb_app(fake.base_url) as app:
        url = app.start_worker("w")
        worker = app.workers["w"]

        assert httpx.get(f"{url}/accounts/login/").status_code == 200
        assert "uvloop" in Path(f"/proc/{worker.pid}/maps").read_text()

        app.kill_worker("w", signal.SIGTERM)
        assert worker.returncode == 0


# Starts the worker as deployed, and once it runs reports what the garbage
# collector leaves out of its collections.
REPORT_FROZEN = """
import gc, sys
from glmweb import serve

install = serve.asyncioreactor.install

def install_and_report(loop):
    install(loop)
    from twisted.internet import reactor

    def report():
        print(gc.get_freeze_count(), flush=True)
        reactor.stop()

    # After the worker's own start-up calls.
    reactor.callWhenRunning(reactor.callLater, 0, report)

serve.asyncioreactor.install = install_and_report
sys.argv = ["glmweb.serve", "-b", "127.0.0.1", "-p", sys.argv[1], "glmweb.asgi:application"]
serve.main()
"""


def test_a_worker_keeps_what_it_loaded_at_start_out_of_garbage_collection() -> None:
    ran = subprocess.run(
        [sys.executable, "-c", REPORT_FROZEN, str(free_port())],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    # Django, the application and their modules: tens of thousands of objects.
    assert int(ran.stdout.split()[0]) > 20_000


async def test_a_reply_streaming_when_its_worker_is_stopped_keeps_its_text(
    fake: FakeUpstream,
) -> None:
    fake.scenario = Scenario(tokens=400, reasoning_tokens=0, delay=0.01)
    expected = "".join(content_tokens(fake.scenario))
    # No checkpoint comes in time: what is kept is saved on the way out.
    with glmweb_app(fake.base_url, GLMWEB_CHECKPOINT_SECONDS="60") as app:
        app.create_user("alice")
        url = app.start_worker("w")
        cookie = login_cookie(url, "alice")
        socket = await RemoteSocket.open(url, cookie)
        await socket.send(type="send", conversation=None, content="Keep this", client_id="s1")
        conversation = (await socket.until("start"))[0]["conversation"]
        received = await socket.text_until(100)

        app.kill_worker("w", signal.SIGTERM)  # a deploy's restart
        url = app.start_worker("w")

        user_message, reply = transcript_of(url, cookie, conversation)
        assert user_message["content"] == "Keep this"
        assert reply["status"] == "interrupted"
        assert "restart" in reply["error_message"]
        assert len(reply["content"]) >= len(text_of(received))
        assert expected.startswith(reply["content"])
