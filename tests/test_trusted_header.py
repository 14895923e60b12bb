"""Sign-in by a header an authenticating proxy sets, through real workers: from
an address in GLMWEB_TRUSTED_PROXIES it signs in (and the chat socket, which
sends the session cookie, follows); from anywhere else it is ignored and
logged. New people follow the sign-up policy; the groups header owns groups."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bench.fake_upstream import FakeUpstream, Scenario, content_tokens
from tests.conftest import text_of
from tests.servers import App, RemoteSocket, glmweb_app

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
