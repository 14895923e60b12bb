"""Sign-up: open, closed, or with approval, where the server keeps a pending
account out of every page and the chat socket until an admin approves it."""

from __future__ import annotations

import pytest
from channels.testing import WebsocketCommunicator
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse
from django.utils.html import escape

from chat.models import SignupApproval
from chat.web.views.accounts import PENDING_MESSAGE
from tests.conftest import PASSWORD, make_user

pytestmark = pytest.mark.django_db

User = get_user_model()


def sign_up(client: Client, username: str = "carol"):
    return client.post(
        reverse("signup"), {"username": username, "password1": PASSWORD, "password2": PASSWORD}
    )


def log_in(client: Client, username: str = "carol"):
    return client.post(reverse("login"), {"username": username, "password": PASSWORD})


def test_open_sign_up_logs_the_new_person_in(client, settings) -> None:
    settings.GLMWEB_SIGNUP = "open"
    assert sign_up(client).status_code == 302
    assert client.get(reverse("chat:home")).status_code == 200


def test_closed_sign_up_is_not_found_and_not_offered(client, settings) -> None:
    settings.GLMWEB_SIGNUP = "closed"
    assert client.get(reverse("signup")).status_code == 404
    assert sign_up(client).status_code == 404
    assert not User.objects.filter(username="carol").exists()
    assert b"Create an account" not in client.get(reverse("login")).content


def test_with_approval_the_account_waits_inactive(client, settings) -> None:
    settings.GLMWEB_SIGNUP = "approval"
    assert b"approves new accounts" in client.get(reverse("signup")).content

    response = sign_up(client)

    assert response.status_code == 201
    assert b"Waiting for approval" in response.content
    carol = User.objects.get(username="carol")
    assert not carol.is_active and not carol.is_staff
    assert SignupApproval.objects.get(user=carol).approved_at is None
    home = client.get(reverse("chat:home"))
    assert home.status_code == 302 and home.url.startswith(reverse("login"))


def test_a_pending_account_is_told_why_it_cannot_log_in(client, settings) -> None:
    settings.GLMWEB_SIGNUP = "approval"
    sign_up(client)

    response = log_in(client)

    assert response.status_code == 200
    assert escape(PENDING_MESSAGE) in response.content.decode()
    assert client.get(reverse("chat:home")).status_code == 302
    wrong = client.post(reverse("login"), {"username": "carol", "password": "not it at all"})
    assert escape(PENDING_MESSAGE) not in wrong.content.decode()  # no hint without the password


def test_a_pending_account_cannot_chat_even_with_a_session(settings) -> None:
    """Even a session made for it (say, before it was deactivated) gets no page."""
    settings.GLMWEB_SIGNUP = "approval"
    sign_up(Client())
    carol = User.objects.get(username="carol")
    client = Client()
    client.force_login(carol)
    for url in (reverse("chat:home"), reverse("chat:usage")):
        response = client.get(url)
        assert response.status_code == 302 and response.url.startswith(reverse("login"))


@pytest.mark.django_db(transaction=True)
async def test_a_pending_account_cannot_open_the_chat_socket(settings) -> None:
    from channels.db import database_sync_to_async

    from glmweb.asgi import application

    @database_sync_to_async
    def pending_session_cookie() -> str:
        carol = make_user("carol", is_active=False)
        SignupApproval.objects.create(user=carol)
        client = Client()
        client.force_login(carol)
        return client.cookies[django_settings.SESSION_COOKIE_NAME].value

    cookie = await pending_session_cookie()
    communicator = WebsocketCommunicator(
        application,
        "/ws/chat/",
        headers=[
            (b"origin", b"http://127.0.0.1"),
            (b"host", b"127.0.0.1"),
            (b"cookie", f"{django_settings.SESSION_COOKIE_NAME}={cookie}".encode()),
        ],
    )
    connected, code = await communicator.connect()
    assert not connected and code == 4401


def test_an_admin_approves_and_the_person_can_log_in(client, settings) -> None:
    settings.GLMWEB_SIGNUP = "approval"
    sign_up(client)
    root = make_user("root", is_staff=True, is_superuser=True)
    admin = Client()
    admin.force_login(root)
    pending = admin.get(reverse("admin:auth_user_changelist") + "?approval=pending")
    assert b"carol" in pending.content

    carol = User.objects.get(username="carol")
    response = admin.post(
        reverse("admin:chat_signupapproval_changelist"),
        {"action": "approve_signups", "_selected_action": [carol.pk]},
    )

    assert response.status_code == 302
    carol.refresh_from_db()
    approval = SignupApproval.objects.get(user=carol)
    assert carol.is_active and approval.approved_by == root and approval.approved_at
    assert log_in(client).status_code == 302
    assert client.get(reverse("chat:home")).status_code == 200


def test_a_weak_password_is_named_beside_the_password_not_its_confirmation(
    client, settings
) -> None:
    settings.GLMWEB_SIGNUP = "open"
    response = client.post(
        reverse("signup"), {"username": "dave", "password1": "123", "password2": "123"}
    )
    form = response.context["form"]
    assert form.errors["password1"]
    assert "password2" not in form.errors
