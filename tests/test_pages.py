"""Pages and accounts over HTTP: sign-up, login, ownership."""

from __future__ import annotations

import posixpath
import re

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from chat.models import Conversation, Message
from tests.conftest import PASSWORD
from tests.servers import transcript_in

pytestmark = pytest.mark.django_db


def make_conversation(owner, title: str = "Alice's plans") -> Conversation:
    conversation = Conversation.objects.create(owner=owner, title=title, model="glm-5")
    question = conversation.messages.create(role="user", content="What are my plans?")
    conversation.messages.create(
        role="assistant", content="**World** domination.", parent=question, total_tokens=9
    )
    return conversation


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_signup_logs_the_new_user_in_and_never_makes_staff(client) -> None:
    response = client.post(
        reverse("signup"),
        {"username": "carol", "password1": PASSWORD, "password2": PASSWORD, "is_staff": "on"},
    )
    assert response.status_code == 302
    carol = get_user_model().objects.get(username="carol")
    assert not carol.is_staff and not carol.is_superuser
    assert client.get(reverse("chat:home")).status_code == 200


def test_signup_can_be_closed(client, settings) -> None:
    settings.GLMWEB_SIGNUP_OPEN = False
    assert client.get(reverse("signup")).status_code == 404
    response = client.post(
        reverse("signup"), {"username": "carol", "password1": PASSWORD, "password2": PASSWORD}
    )
    assert response.status_code == 404
    assert not get_user_model().objects.filter(username="carol").exists()
    assert b"Sign up" not in client.get(reverse("login")).content


def test_pages_need_a_login(client, alice) -> None:
    conversation = make_conversation(alice)
    for url in (reverse("chat:home"), reverse("chat:conversation", args=[conversation.id])):
        response = client.get(url)
        assert response.status_code == 302 and response.url.startswith(reverse("login"))


def test_login_and_logout(client, alice) -> None:
    response = client.post(reverse("login"), {"username": "alice", "password": PASSWORD})
    assert response.status_code == 302
    assert client.get(reverse("chat:home")).status_code == 200
    client.post(reverse("logout"))
    assert client.get(reverse("chat:home")).status_code == 302


def test_the_page_shows_the_sidebar_and_the_transcript(alice) -> None:
    conversation = make_conversation(alice)
    make_conversation(alice, title="Older plans")
    Conversation.objects.filter(title="Older plans").update(updated_at="2020-01-01T00:00Z")

    response = logged_in(alice).get(reverse("chat:conversation", args=[conversation.id]))

    html = response.content.decode()
    assert html.index("Alice&#x27;s plans") < html.index("Older plans")
    transcript = transcript_in(html)
    assert [m["role"] for m in transcript] == ["user", "assistant"]
    assert transcript[1]["content"] == "**World** domination."


def test_another_users_conversation_is_not_found(alice, bob) -> None:
    conversation = make_conversation(alice)
    bobs = logged_in(bob)

    assert bobs.get(reverse("chat:conversation", args=[conversation.id])).status_code == 404
    assert bobs.post(reverse("chat:delete", args=[conversation.id])).status_code == 404
    missing = "00000000-0000-0000-0000-000000000000"
    assert bobs.get(reverse("chat:conversation", args=[missing])).status_code == 404
    assert Message.objects.filter(conversation=conversation).count() == 2
    assert b"Alice" not in bobs.get(reverse("chat:home")).content


def test_delete_needs_post_and_removes_the_conversation(alice) -> None:
    conversation = make_conversation(alice)
    client = logged_in(alice)
    url = reverse("chat:delete", args=[conversation.id])
    assert client.get(url).status_code == 405
    assert client.post(url).status_code == 302
    assert not Conversation.objects.exists()
    assert not Message.objects.exists()


def test_the_demo_model_is_labelled(alice, settings) -> None:
    settings.GLMWEB_DEMO_MODEL = True
    assert b"Demo model" in logged_in(alice).get(reverse("chat:home")).content
    settings.GLMWEB_DEMO_MODEL = False
    assert b"Demo model" not in logged_in(alice).get(reverse("chat:home")).content


def test_the_api_key_never_reaches_the_page(alice, settings) -> None:
    settings.UPSTREAM_API_KEY = "sk-secret-never-shown"
    make_conversation(alice)
    html = logged_in(alice).get(reverse("chat:home")).content
    assert b"sk-secret-never-shown" not in html


def test_healthz(client) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json()["database"] is True


def test_the_chat_page_preloads_every_module_its_script_imports(alice) -> None:
    html = logged_in(alice).get(reverse("chat:home")).content.decode()
    preloaded = set(re.findall(r'<link rel="modulepreload" href="/static/([^"]+)">', html))
    imported: set[str] = set()
    pending = ["chat/app.js"]
    while pending:
        module = pending.pop()
        source = (settings.BASE_DIR / "static" / module).read_text()
        for target in re.findall(r'(?:from|import) "(\.[^"]+)"', source):
            path = posixpath.normpath(posixpath.join(posixpath.dirname(module), target))
            if path not in imported:
                imported.add(path)
                pending.append(path)
    assert preloaded == imported
