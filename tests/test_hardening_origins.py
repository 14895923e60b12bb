"""A socket opens only from the site's own origin: scheme, host and port (issue 18, 7).

channels' AllowedHostsOriginValidator compared the host alone, so a page
of another service on the same host name (another port, or https for an
http site) could open sockets with the person's session cookie.
"""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings as django_settings

from tests.conftest import EVENT_TIMEOUT, session_cookie

pytestmark = pytest.mark.django_db(transaction=True)

SITE = "127.0.0.1:8000"  # the site is http://127.0.0.1:8000


async def connects(
    user, origin: str | None, host: str = SITE, scheme: str = "ws", **headers: str
) -> tuple[bool, int | None]:
    from glmweb.asgi import application

    cookie = await database_sync_to_async(session_cookie)(user)
    sent = [
        (b"host", host.encode()),
        (b"cookie", f"{django_settings.SESSION_COOKIE_NAME}={cookie}".encode()),
        *((name.replace("_", "-").encode(), value.encode()) for name, value in headers.items()),
    ]
    if origin is not None:
        sent.append((b"origin", origin.encode()))
    communicator = WebsocketCommunicator(application, "/ws/chat/", headers=sent)
    communicator.scope["scheme"] = scheme
    connected, code = await communicator.connect(timeout=EVENT_TIMEOUT)
    if connected:
        await communicator.disconnect()
    return connected, code


async def test_only_the_sites_own_origin_opens_a_socket(alice) -> None:
    assert await connects(alice, "http://127.0.0.1:8000") == (True, None)
    for origin in (
        "http://127.0.0.1:9999",  # another service on the same host
        "https://127.0.0.1",
        "https://127.0.0.1:8000",
        "http://127.0.0.1",
        "http://localhost:8000",
        "http://evil.example",
        "null",
        None,
    ):
        assert await connects(alice, origin) == (False, 4403), origin


async def test_the_host_must_be_allowed_whatever_the_origin(alice) -> None:
    assert await connects(alice, "http://evil.example", host="evil.example") == (False, 4403)
    assert (await connects(alice, "http://localhost:8000", host="localhost:8000"))[0]


async def test_behind_tls_the_origin_is_https(alice, settings) -> None:
    assert (await connects(alice, "https://127.0.0.1:8000", scheme="wss"))[0]
    assert not (await connects(alice, "http://127.0.0.1:8000", scheme="wss"))[0]

    # A proxy ends TLS and says so in X-Forwarded-Proto, when settings trust it.
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    assert (await connects(alice, "https://127.0.0.1:8000", x_forwarded_proto="https"))[0]
    assert not (await connects(alice, "http://127.0.0.1:8000", x_forwarded_proto="https"))[0]


async def test_csrf_trusted_origins_open_sockets_too(alice, settings) -> None:
    settings.CSRF_TRUSTED_ORIGINS = ["https://chat.example.com", "https://*.example.org"]
    assert (await connects(alice, "https://chat.example.com"))[0]
    assert (await connects(alice, "https://app.example.org"))[0]
    assert not (await connects(alice, "http://chat.example.com"))[0]
    assert not (await connects(alice, "https://chat.example.com:8443"))[0]
    assert not (await connects(alice, "https://example.org.evil.example"))[0]
