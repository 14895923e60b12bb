"""Hostile or unlucky input, and the production configuration."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from chat.models import Conversation, Message
from chat.web.views.accounts import throttle_keys
from glmweb.logging import JsonFormatter
from tests.conftest import PASSWORD, hosted, make_user, open_socket, session_cookie
from tests.servers import ROOT, deploy_check

pytestmark = pytest.mark.django_db(transaction=True)


async def test_too_many_sockets_are_refused_without_touching_others(
    alice, bob, fake, settings
) -> None:
    settings.GLMWEB_MAX_SOCKETS_PER_USER = 2
    first, second = await open_socket(alice), await open_socket(alice)
    third = await open_socket(alice)

    error = await third.event()
    assert error["code"] == "too_many_sockets"
    assert (await third.communicator.receive_output())["type"] == "websocket.close"
    bobs = await open_socket(bob)
    assert (await bobs.turn("Bob is fine"))[-1]["type"] == "done"
    assert (await first.turn("Alice is fine"))[-1]["type"] == "done"
    for socket in (first, second, bobs):
        await socket.close()


async def connect_with_cookie(cookie: str) -> tuple[bool, int | None]:
    from glmweb.asgi import application

    communicator = WebsocketCommunicator(
        application,
        "/ws/chat/",
        headers=[
            (b"origin", b"http://127.0.0.1"),
            (b"host", b"127.0.0.1"),
            (b"cookie", cookie.encode()),
        ],
    )
    connected, code = await communicator.connect()
    if connected:
        await communicator.disconnect()
    return connected, code


async def test_an_inactive_account_cannot_open_a_socket(alice) -> None:
    cookie = await database_sync_to_async(session_cookie)(alice)
    await database_sync_to_async(get_user_model().objects.filter(id=alice.id).update)(
        is_active=False
    )
    connected, code = await connect_with_cookie(f"sessionid={cookie}")
    assert not connected and code == 4401


async def test_a_socket_needs_a_session_that_still_logs_in(alice) -> None:
    cookie = await database_sync_to_async(session_cookie)(alice)
    assert (await connect_with_cookie(f"theme=dark; sessionid={cookie}"))[0]

    await database_sync_to_async(_change_password)(alice)
    for cookie_header in (f"sessionid={cookie}", "sessionid=forged0key0that0was0never0issued"):
        connected, code = await connect_with_cookie(cookie_header)
        assert not connected and code == 4401


def _deactivate(user) -> None:
    get_user_model().objects.filter(id=user.id).update(is_active=False)


def _change_password(user) -> None:
    user.set_password("a whole new password")
    user.save()


def _expire_sessions(user) -> None:
    from django.contrib.sessions.models import Session

    Session.objects.update(expire_date=timezone.now() - timedelta(seconds=1))


@pytest.mark.parametrize("change", [_deactivate, _change_password, _expire_sessions])
async def test_an_account_change_elsewhere_cuts_its_open_socket(alice, fake, change) -> None:
    socket = await open_socket(alice)
    await database_sync_to_async(change)(alice)
    await socket.send_message("Still here?")
    assert (await socket.event())["code"] == "not_authenticated"
    assert (await socket.communicator.receive_output())["type"] == "websocket.close"
    assert fake.requests == []


def test_login_guessing_is_throttled(bob) -> None:
    make_user("target")
    cache.delete_many(throttle_keys("target", "10.9.9.9"))
    client = Client(REMOTE_ADDR="10.9.9.9")
    for _ in range(5):
        response = client.post(reverse("login"), {"username": "target", "password": "wrong"})
        assert response.status_code == 200
    response = client.post(reverse("login"), {"username": "target", "password": PASSWORD})
    assert response.status_code == 429
    assert b"Too many failed logins" in response.content
    # Someone else, from elsewhere, still logs in.
    other = Client(REMOTE_ADDR="10.9.9.10")
    assert (
        other.post(reverse("login"), {"username": "bob", "password": PASSWORD}).status_code == 302
    )
    cache.delete_many(throttle_keys("target", "10.9.9.9"))


def test_pages_carry_a_strict_content_security_policy(alice) -> None:
    client = Client()
    client.force_login(alice)
    response = client.get(reverse("chat:home"))
    policy = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    html = response.content.decode()
    inline = re.findall(r"<script(?![^>]*\bsrc=)(?![^>]*application/json)[^>]*>", html)
    assert inline == []
    assert not re.search(r"\son[a-z]+=", html), "no inline event handlers"


def test_stale_streaming_replies_show_as_interrupted(alice) -> None:
    conversation = Conversation.objects.create(owner=alice, model="glm-5", title="Old")
    question = conversation.messages.create(role="user", content="Hi")
    reply = conversation.messages.create(
        role="assistant", content="Half a", status="streaming", parent=question
    )
    Message.objects.filter(id=reply.id).update(updated_at=timezone.now() - timedelta(hours=1))
    client = Client()
    client.force_login(alice)

    client.get(reverse("chat:conversation", args=[conversation.id]))

    reply.refresh_from_db()
    assert (reply.status, reply.content) == ("interrupted", "Half a")


async def test_logs_hold_neither_the_key_nor_message_text(alice, fake, settings, caplog) -> None:
    settings.UPSTREAM_MAX_RETRIES = 0
    from bench.fake_upstream import Scenario

    fake.enqueue(Scenario(status=401, error_body='{"error": {"message": "bad key test-key"}}'))
    caplog.set_level(logging.DEBUG)
    socket = await open_socket(alice)

    await socket.turn("my secret diary entry")
    await socket.turn("another private line", conversation=None)

    formatter = JsonFormatter()
    lines = [formatter.format(record) for record in caplog.records]
    assert lines, "the turn logged something"
    for line in lines:
        assert "test-key-not-a-real-one" not in line
        assert "secret diary" not in line and "private line" not in line
        json.loads(line)
    await socket.close()


def test_the_json_formatter_redacts_the_key(settings) -> None:
    settings.UPSTREAM_API_KEY = "sk-live-abcdef"
    record = logging.makeLogRecord({"msg": "oops %s", "args": ("sk-live-abcdef",), "reply": 5})
    line = JsonFormatter().format(record)
    assert "sk-live-abcdef" not in line and json.loads(line)["reply"] == 5


def test_check_deploy_is_clean_with_production_settings() -> None:
    result = deploy_check()
    assert result.returncode == 0, result.stderr


def test_production_refuses_to_start_without_a_secret_key() -> None:
    env = {**os.environ, "DEBUG": "false", "SECRET_KEY": ""}
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0 and "SECRET_KEY" in result.stderr


def test_healthz_checks_the_database_and_redis(client) -> None:
    body = client.get("/healthz").json()
    assert body["ok"] is True and body["database"] is True
    assert body["redis"] is (True if hosted() else None)  # null: no Redis configured


@pytest.mark.skipif(not hosted(), reason="needs REDIS_URL")
def test_healthz_fails_when_redis_is_down(client, settings) -> None:
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    response = client.get("/healthz")
    assert response.status_code == 503 and response.json()["redis"] is False
