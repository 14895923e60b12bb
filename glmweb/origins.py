"""The chat socket's origin check: the page's own origin, as Django's CSRF check has it.

A browser sends any site's page's origin with a socket's handshake, and the
session cookie with it. channels' AllowedHostsOriginValidator compares the
host alone, so a page of another service on the same host name (another
port, or http for an https site) could open logged-in sockets. Here the
origin must be the scheme, host and port the handshake came to (the Host
header, itself one of ALLOWED_HOSTS, and http or https, SECURE_PROXY_SSL_HEADER
honoured) or one of CSRF_TRUSTED_ORIGINS, exactly as CsrfViewMiddleware checks
a POST's Origin.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.http import HttpRequest
from django.utils.http import is_same_domain

log = logging.getLogger(__name__)

CLOSE_FORBIDDEN = 4403


class OriginValidator:
    """ASGI middleware: a socket from another origin is closed (4403) before the app sees it."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        if scope["type"] == "websocket" and not origin_allowed(scope):
            log.info("socket refused: origin not allowed", extra={"origin": _origin(scope)})
            await receive()  # the connect
            await send({"type": "websocket.close", "code": CLOSE_FORBIDDEN})
            return None
        return await self.inner(scope, receive, send)


def origin_allowed(scope: dict[str, Any]) -> bool:
    origin = _origin(scope)
    if origin is None:
        return False
    handshake = _HandshakeRequest(scope)
    try:
        own = f"{'https' if handshake.is_secure() else 'http'}://{handshake.get_host()}"
    except DisallowedHost:
        return False  # not one of ALLOWED_HOSTS, whatever the origin
    return origin == own or _trusted(origin)


def _trusted(origin: str) -> bool:
    try:
        parsed = urlsplit(origin)
    except ValueError:
        return False
    for trusted in settings.CSRF_TRUSTED_ORIGINS:
        if "*" not in trusted:
            if origin == trusted:
                return True
            continue
        # "https://*.example.com": the subdomains of example.com, on https.
        scheme, _, netloc = trusted.partition("://")
        if parsed.scheme == scheme and is_same_domain(parsed.netloc, netloc.lstrip("*")):
            return True
    return False


def _origin(scope: dict[str, Any]) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"origin":
            origin: str = value.decode("latin1")
            return origin
    return None


class _HandshakeRequest(HttpRequest):
    """The handshake as an HttpRequest, for Django's own get_host() and is_secure()."""

    def __init__(self, scope: dict[str, Any]) -> None:
        super().__init__()
        self._secure_scheme = scope.get("scheme") in ("wss", "https")
        server = scope.get("server") or ("", 0)
        self.META = {"SERVER_NAME": server[0] or "", "SERVER_PORT": str(server[1] or "")}
        for name, value in scope.get("headers", ()):
            key = "HTTP_" + name.decode("latin1").upper().replace("-", "_")
            text = value.decode("latin1")
            self.META[key] = f"{self.META[key]},{text}" if key in self.META else text

    def _get_scheme(self) -> str:
        return "https" if self._secure_scheme else "http"
