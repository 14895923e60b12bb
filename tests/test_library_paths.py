"""glmweb stays on its libraries' own paths (issue 19; docs/performance.md lists what doesn't)."""

from __future__ import annotations

import sys

from channels.auth import AuthMiddleware
from channels.consumer import AsyncConsumer
from channels.routing import URLRouter
from channels.sessions import CookieMiddleware, SessionMiddleware
from django.conf import settings

from chat.live.consumer import ChatConsumer
from glmweb.origins import OriginValidator


def test_the_socket_passes_the_origin_check_then_channels_auth_stack_then_the_router() -> None:
    from glmweb.asgi import application

    chain = []
    app = application.application_mapping["websocket"]
    while app is not None:
        chain.append(type(app))
        app = getattr(app, "inner", None)
    assert chain == [
        OriginValidator,
        CookieMiddleware,
        SessionMiddleware,
        AuthMiddleware,
        URLRouter,
    ]


def test_the_consumer_dispatches_as_channels_does() -> None:
    assert "dispatch" not in vars(ChatConsumer)
    assert ChatConsumer.dispatch is AsyncConsumer.dispatch


def test_settings_leave_the_interpreter_alone() -> None:
    assert sys.getswitchinterval() == 0.005  # Python's default
    assert not hasattr(settings, "GLMWEB_GIL_SWITCH_SECONDS")


def test_the_worker_leaves_twisteds_writes_alone() -> None:
    from twisted.internet import tcp

    import glmweb.serve

    assert not hasattr(glmweb.serve, "install_write_through")
    assert tcp.Connection.write.__module__.startswith("twisted.internet.")
