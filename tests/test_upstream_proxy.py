"""A forward proxy between glmweb and the provider: HTTPS_PROXY, NO_PROXY, SSL_CERT_FILE.

A real proxy (Debian's tinyproxy, `make system-packages` installs it) and a TLS
fake upstream behind a private CA: the reply goes through the proxy over
CONNECT, in this process and from a real glmweb worker.
"""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme

from bench.fake_upstream import FakeUpstream, Scenario, content_tokens
from bench.servers import free_port
from chat.upstream import (
    ChatRequest,
    ContentDelta,
    Event,
    Finish,
    Unreachable,
    UpstreamConfig,
    close_clients,
    stream_chat_batches,
)
from tests.conftest import text_of
from tests.servers import RemoteSocket, glmweb_app, login_cookie

TINYPROXY = shutil.which("tinyproxy") or "/usr/bin/tinyproxy"
PROXY_VARIABLES = ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY")

pytestmark = pytest.mark.skipif(
    not Path(TINYPROXY).exists(), reason="needs tinyproxy (make system-packages)"
)


@dataclass
class Proxy:
    url: str
    log: Path

    def connects(self) -> list[str]:
        """The CONNECT requests the proxy has logged."""
        return [line for line in self.log.read_text().splitlines() if "CONNECT 127.0.0.1:" in line]


@contextmanager
def tinyproxy(folder: Path, connect_port: int) -> Iterator[Proxy]:
    """tinyproxy on a free loopback port, allowing CONNECT to `connect_port` only."""
    port = free_port()
    log = folder / "tinyproxy.log"
    config = folder / "tinyproxy.conf"
    config.write_text(
        f"Port {port}\nListen 127.0.0.1\nAllow 127.0.0.1\nConnectPort {connect_port}\n"
        f'LogLevel Connect\nLogFile "{log}"\nMaxClients 50\nTimeout 60\n'
    )
    process = subprocess.Popen([TINYPROXY, "-d", "-c", str(config)], stderr=subprocess.DEVNULL)
    try:
        _wait_for_port(port)
        yield Proxy(f"http://127.0.0.1:{port}", log)
    finally:
        process.terminate()
        process.wait(10)


def _wait_for_port(port: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"tinyproxy did not listen on {port}")


REQUEST = ChatRequest(model="glm-5", messages=[{"role": "user", "content": "Hi, via the proxy"}])


@pytest.fixture
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path: Path) -> str:
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


def server_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    return context


@pytest.fixture
async def tls_fake(ca: trustme.CA) -> AsyncIterator[FakeUpstream]:
    fake = FakeUpstream(Scenario(tokens=200, reasoning_tokens=5))
    await fake.start(tls=server_context(ca))
    yield fake
    await close_clients()
    await fake.stop()


@pytest.fixture
def proxy(tls_fake: FakeUpstream, tmp_path: Path) -> Iterator[Proxy]:
    with tinyproxy(tmp_path, tls_fake.port) as running:
        yield running


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch, ca_file: str) -> pytest.MonkeyPatch:
    """No proxy settings from outside the test; the private CA trusted."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    monkeypatch.setenv("SSL_CERT_FILE", ca_file)
    return monkeypatch


async def batches_of(fake: FakeUpstream) -> list[list[Event]]:
    config = UpstreamConfig(base_url=fake.base_url, api_key="k", max_retries=0, chunk_timeout=5)
    return [batch async for batch in stream_chat_batches(REQUEST, config)]


def events_text(batches: list[list[Event]]) -> str:
    return "".join(e.text for batch in batches for e in batch if isinstance(e, ContentDelta))


async def test_a_reply_streams_through_the_proxy_over_connect(
    tls_fake: FakeUpstream, proxy: Proxy, environment: pytest.MonkeyPatch
) -> None:
    environment.setenv("HTTPS_PROXY", proxy.url)

    batches = await batches_of(tls_fake)

    assert tls_fake.base_url.startswith("https://")
    assert events_text(batches) == "".join(content_tokens(tls_fake.scenario))
    assert Finish("stop") in batches[-1]
    assert len(proxy.connects()) == 1
    assert f"CONNECT 127.0.0.1:{tls_fake.port} " in proxy.connects()[0]


async def test_no_proxy_reaches_the_provider_directly(
    tls_fake: FakeUpstream, proxy: Proxy, environment: pytest.MonkeyPatch
) -> None:
    environment.setenv("HTTPS_PROXY", proxy.url)
    environment.setenv("NO_PROXY", "127.0.0.1")

    batches = await batches_of(tls_fake)

    assert events_text(batches) == "".join(content_tokens(tls_fake.scenario))
    assert proxy.connects() == []


async def test_a_proxy_that_refuses_the_connect_is_a_plain_error(
    tls_fake: FakeUpstream, tmp_path: Path, environment: pytest.MonkeyPatch
) -> None:
    with tinyproxy(tmp_path, connect_port=tls_fake.port + 1) as refusing:
        environment.setenv("HTTPS_PROXY", refusing.url)
        with pytest.raises(Unreachable) as caught:
            await batches_of(tls_fake)

    assert "ProxyError" in caught.value.detail
    assert "127.0.0.1" not in caught.value.user_message
    assert tls_fake.requests == []


@pytest.fixture
def threaded_tls_fake(ca: trustme.CA) -> Iterator[FakeUpstream]:
    fake = FakeUpstream(Scenario(tokens=150, reasoning_tokens=3, delay=0.002))
    with fake.run_in_thread(tls=server_context(ca)) as running:
        yield running


async def test_a_worker_streams_a_reply_to_a_socket_through_the_proxy(
    threaded_tls_fake: FakeUpstream, ca_file: str, tmp_path: Path, environment: pytest.MonkeyPatch
) -> None:
    fake = threaded_tls_fake
    with tinyproxy(tmp_path, fake.port) as proxy:
        env = {"HTTPS_PROXY": proxy.url, "SSL_CERT_FILE": ca_file}
        with glmweb_app(fake.base_url, **env) as app:
            app.create_user("alice")
            url = app.start_worker("proxied")
            cookie = login_cookie(url, "alice")
            chat = await RemoteSocket.open(url, cookie)
            await chat.send(type="send", conversation=None, content="Hi", client_id="p1")
            events = await chat.until("done", "error")
            await chat.close()

        assert events[-1]["type"] == "done", events[-1]
        assert text_of(events) == "".join(content_tokens(fake.scenario))
        assert len(proxy.connects()) == 1
