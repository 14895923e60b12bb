"""Sign-in by a header an authenticating proxy sets, through real workers: from
an address in GLMWEB_TRUSTED_PROXIES it signs in (and the chat socket, which
sends the session cookie, follows); from anywhere else it is ignored and
logged. New people follow the sign-up policy; the groups header owns groups."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from bench.fake_upstream import FakeUpstream, Scenario, content_tokens
from tests.browser import NGINX
from tests.conftest import text_of
from tests.servers import ROOT, App, RemoteSocket, free_port, glmweb_app, wait_for_http

HEADERS = {
    "GLMWEB_TRUSTED_USER_HEADER": "X-Forwarded-User",
    "GLMWEB_TRUSTED_GROUPS_HEADER": "X-Forwarded-Groups",
}


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeUpstream]:
    with FakeUpstream().run_in_thread() as upstream:
        yield upstream


def started(fake: FakeUpstream, name: str, **env: str) -> Iterator[App]:
    with glmweb_app(fake.base_url, **HEADERS, **env) as app:
        app.start_worker(name)
        yield app


@pytest.fixture(scope="module")
def behind_proxy(fake: FakeUpstream) -> Iterator[App]:
    """Workers whose proxy is on loopback, as nginx on the same machine is."""
    yield from started(fake, "behind-proxy", GLMWEB_TRUSTED_PROXIES="10.9.0.0/16, 127.0.0.1")


@pytest.fixture(scope="module")
def proxy_elsewhere(fake: FakeUpstream) -> Iterator[App]:
    """Workers that trust only a proxy elsewhere: loopback is a stranger to them."""
    yield from started(fake, "proxy-elsewhere", GLMWEB_TRUSTED_PROXIES="10.9.0.1")


@pytest.fixture(scope="module")
def closed(fake: FakeUpstream) -> Iterator[App]:
    yield from started(fake, "closed", GLMWEB_TRUSTED_PROXIES="127.0.0.1", GLMWEB_SIGNUP="closed")


@pytest.fixture(scope="module")
def approval(fake: FakeUpstream) -> Iterator[App]:
    yield from started(
        fake, "approval", GLMWEB_TRUSTED_PROXIES="127.0.0.1", GLMWEB_SIGNUP="approval"
    )


def url(app: App) -> str:
    return f"http://127.0.0.1:{next(iter(app.ports.values()))}"


def user(app: App, username: str) -> dict[str, object] | None:
    script = (
        "import json; from django.contrib.auth import get_user_model; "
        f"u = get_user_model().objects.filter(username={username!r}).first(); "
        "print(json.dumps(None if u is None else {'active': u.is_active, "
        "'groups': sorted(u.groups.values_list('name', flat=True))}))"
    )
    return json.loads(app.manage("shell", "-c", script).strip().splitlines()[-1])


def log_of(app: App) -> str:
    name, port = next(iter(app.ports.items()))
    return (Path(tempfile.gettempdir()) / f"glmweb-{name}-{port}.log").read_text()


async def test_from_the_proxy_it_signs_in_and_the_socket_follows(behind_proxy, fake) -> None:
    fake.scenario = Scenario(tokens=30, reasoning_tokens=0)
    base = url(behind_proxy)
    async with httpx.AsyncClient(base_url=base) as client:
        home = await client.get(
            "/", headers={"X-Forwarded-User": "alice", "X-Forwarded-Groups": "eng, staff"}
        )
        assert home.status_code == 200
        assert '<span class="account-name">alice</span>' in home.text
        cookie = client.cookies["sessionid"]
        # The session holds without the header (the proxy may send it only sometimes).
        assert (await client.get("/usage/")).status_code == 200

    socket = await RemoteSocket.open(base, cookie)
    await socket.send(type="send", conversation=None, content="Hi", client_id="th1")
    events = await socket.until("done")
    await socket.close()

    assert text_of(events) == "".join(content_tokens(fake.scenario))
    assert user(behind_proxy, "alice") == {"active": True, "groups": ["eng", "staff"]}


def test_each_sign_in_takes_the_groups_the_proxy_names(behind_proxy) -> None:
    base = url(behind_proxy)
    httpx.get(f"{base}/", headers={"X-Forwarded-User": "bob", "X-Forwarded-Groups": "eng"})
    assert user(behind_proxy, "bob") == {"active": True, "groups": ["eng"]}

    httpx.get(f"{base}/", headers={"X-Forwarded-User": "bob", "X-Forwarded-Groups": "ops,sales"})

    assert user(behind_proxy, "bob") == {"active": True, "groups": ["ops", "sales"]}


def test_a_header_naming_someone_else_switches_the_session(behind_proxy) -> None:
    with httpx.Client(base_url=url(behind_proxy)) as client:
        client.get("/", headers={"X-Forwarded-User": "carol"})
        page = client.get("/", headers={"X-Forwarded-User": "dave"})
    assert '<span class="account-name">dave</span>' in page.text


def test_from_anywhere_else_the_header_is_ignored_and_logged(proxy_elsewhere) -> None:
    response = httpx.get(f"{url(proxy_elsewhere)}/", headers={"X-Forwarded-User": "alice"})

    assert response.status_code == 302
    assert response.headers["location"].startswith("/accounts/login/")
    assert "sessionid" not in response.cookies
    assert user(proxy_elsewhere, "alice") is None
    assert "sign-in header from an untrusted address ignored" in log_of(proxy_elsewhere)


def test_a_name_that_is_no_user_name_is_refused(behind_proxy) -> None:
    response = httpx.get(f"{url(behind_proxy)}/", headers={"X-Forwarded-User": "a b/c"})
    assert response.status_code == 400
    assert user(behind_proxy, "a b/c") is None


def test_closed_sign_up_refuses_a_stranger_and_lets_an_account_in(closed) -> None:
    base = url(closed)
    refused = httpx.get(f"{base}/", headers={"X-Forwarded-User": "erin"})
    assert refused.status_code == 403
    assert "There is no account for erin here, and sign-up is closed." in refused.text
    assert user(closed, "erin") is None

    closed.create_user("frank")
    assert httpx.get(f"{base}/", headers={"X-Forwarded-User": "frank"}).status_code == 200


def test_with_approval_a_stranger_waits_for_an_admin(approval) -> None:
    base = url(approval)
    for _ in range(2):
        waiting = httpx.get(f"{base}/", headers={"X-Forwarded-User": "grace"})
        assert waiting.status_code == 403
        assert "Waiting for approval" in waiting.text
    assert user(approval, "grace") == {"active": False, "groups": []}


# --- Through nginx and an auth_request proxy (docs/nginx/glmweb-auth-proxy.conf) ---


class FakeAuthProxy(BaseHTTPRequestHandler):
    """oauth2-proxy's auth_request answer: the cookie ``who`` is the signed-in person."""

    def do_GET(self) -> None:
        cookies = SimpleCookie(self.headers.get("Cookie", ""))
        if self.path.startswith("/oauth2/auth") and "who" in cookies:
            self.send_response(202)
            self.send_header("X-Auth-Request-User", cookies["who"].value)
            self.send_header("X-Auth-Request-Groups", "eng,staff")
        elif self.path.startswith("/oauth2/auth"):
            self.send_response(401)
        else:
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", "13")
            self.end_headers()
            self.wfile.write(b"auth sign-in\n")
            return
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def render_auth_proxy_config(folder: Path, listen: int, port: int, auth_port: int) -> Path:
    server_block = (ROOT / "docs" / "nginx" / "glmweb-auth-proxy.conf").read_text()
    for placeholder, value in {
        "{{ servers }}": f"server 127.0.0.1:{port};",
        "{{ listen }}": f"127.0.0.1:{listen}",
        "{{ server_name }}": "127.0.0.1",
        "{{ static_root }}": str(folder),
        "{{ auth_proxy }}": f"127.0.0.1:{auth_port}",
    }.items():
        server_block = server_block.replace(placeholder, value)
    (folder / "glmweb.conf").write_text(server_block)
    temp = " ".join(
        f"{kind}_temp_path {folder}/{kind};" for kind in ("client_body", "proxy", "fastcgi")
    )
    main = folder / "nginx.conf"
    main.write_text(
        f"worker_processes 1; daemon off; pid {folder}/nginx.pid;\n"
        f"error_log {folder}/error.log warn;\n"
        "events { worker_connections 256; }\n"
        f"http {{ access_log off; {temp} uwsgi_temp_path {folder}/uwsgi; "
        f"scgi_temp_path {folder}/scgi; include {folder}/glmweb.conf; }}\n"
    )
    return main


@pytest.fixture(scope="module")
def through_nginx(behind_proxy: App) -> Iterator[str]:
    if not os.path.exists(NGINX):
        pytest.skip("needs Debian's nginx (make test installs it as root)")
    auth = ThreadingHTTPServer(("127.0.0.1", 0), FakeAuthProxy)
    threading.Thread(target=auth.serve_forever, daemon=True).start()
    with tempfile.TemporaryDirectory() as folder:
        os.chmod(folder, 0o755)
        listen = free_port()
        config = render_auth_proxy_config(
            Path(folder), listen, behind_proxy.ports["behind-proxy"], auth.server_address[1]
        )
        nginx = subprocess.Popen([NGINX, "-c", str(config)])
        try:
            wait_for_http(f"http://127.0.0.1:{listen}/oauth2/sign_in")
            yield f"http://127.0.0.1:{listen}"
        finally:
            nginx.terminate()
            nginx.wait(10)
            auth.shutdown()


async def test_through_nginx_a_clients_own_header_never_gets_through(
    through_nginx, behind_proxy, fake
) -> None:
    fake.scenario = Scenario(tokens=20, reasoning_tokens=0)
    forged = {"X-Forwarded-User": "root", "X-Forwarded-Groups": "admins"}
    async with httpx.AsyncClient(base_url=through_nginx) as client:
        stranger = await client.get("/", headers=forged)
        assert stranger.text == "auth sign-in\n"

        client.cookies.set("who", "ida")
        home = await client.get("/", headers=forged)
        assert '<span class="account-name">ida</span>' in home.text
        cookie = client.cookies["sessionid"]

    # The proxy's cookie rides along: nginx asks the proxy about the socket too.
    socket = await RemoteSocket.open(through_nginx, f"{cookie}; who=ida")
    await socket.send(type="send", conversation=None, content="Hi", client_id="ng1")
    events = await socket.until("done")
    await socket.close()

    assert text_of(events) == "".join(content_tokens(fake.scenario))
    assert user(behind_proxy, "ida") == {"active": True, "groups": ["eng", "staff"]}
    assert user(behind_proxy, "root") is None
