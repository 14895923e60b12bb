"""A title carries no bidi controls, whichever path set it (issue 18, 6).

"Payroll report \\u202efdp.exe" showed as "Payroll report exe.pdf" in the
sidebar, the top bar and the tab, and reversed what followed it in the
admin's breadcrumb and delete confirmation.
"""

from __future__ import annotations

import json

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from chat.models import Conversation
from chat.turns import titles
from tests.conftest import make_user, open_socket

pytestmark = pytest.mark.django_db(transaction=True)

SPOOFED = "Payroll report \u202efdp.exe"
CLEAN = "Payroll report fdp.exe"
BIDI_CONTROLS = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c"


def client_of(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def title_of(conversation_id: str) -> str:
    return Conversation.objects.values_list("title", flat=True).get(id=conversation_id)


def no_bidi(text: str) -> bool:
    return not any(control in text for control in BIDI_CONTROLS)


async def test_a_first_message_title_has_no_bidi_controls(alice, fake) -> None:
    socket = await open_socket(alice)
    start = (await socket.turn(SPOOFED))[0]

    assert start["title"] == CLEAN
    assert await database_sync_to_async(title_of)(start["conversation"]) == CLEAN
    await socket.close()


def test_a_rename_has_no_bidi_controls(alice) -> None:
    conversation = Conversation.objects.create(owner=alice, title="Plans", model="glm-5")
    url = reverse("chat:rename", args=[conversation.id])
    for control in BIDI_CONTROLS:
        response = client_of(alice).post(url, {"title": f"Payroll {control}fdp.exe"})
        assert response.json()["title"] == "Payroll fdp.exe"
        assert title_of(conversation.id) == "Payroll fdp.exe"


def test_a_generated_title_has_no_bidi_controls() -> None:
    assert titles.clean_title(f"Title: {SPOOFED}\n") == CLEAN


def test_every_saved_title_is_cleaned(alice) -> None:
    conversation = Conversation.objects.create(owner=alice, title=SPOOFED, model="glm-5")
    assert title_of(conversation.id) == CLEAN
    conversation.title = "\u2067Isolated\u2069 title"
    conversation.save()
    assert title_of(conversation.id) == "Isolated title"


def test_a_preset_name_has_no_bidi_controls(alice) -> None:
    response = client_of(alice).post(
        reverse("chat:create_preset"),
        json.dumps({"name": "Terse \u202eyknarc", "settings": {}}),
        content_type="application/json",
    )
    assert response.status_code == 201
    assert response.json()["preset"]["name"] == "Terse yknarc"


def test_a_title_saved_before_the_rule_shows_without_them(alice, settings) -> None:
    conversation = Conversation.objects.create(owner=alice, title="Plans", model="glm-5")
    # As an older row holds it: update() writes it as given.
    Conversation.objects.filter(id=conversation.id).update(title=SPOOFED)
    assert not no_bidi(title_of(conversation.id))

    page = client_of(alice).get(reverse("chat:conversation", args=[conversation.id]))
    listing = client_of(alice).get(reverse("chat:conversation_list"))

    assert CLEAN in page.content.decode() and no_bidi(page.content.decode())
    assert listing.json()["conversations"][0]["title"] == CLEAN

    settings.GLMWEB_ADMIN_CAN_READ_CONVERSATIONS = True
    root = make_user("root", is_staff=True, is_superuser=True)
    admin = client_of(root)
    for name in ("admin:chat_conversation_change", "admin:chat_conversation_delete"):
        response = admin.get(reverse(name, args=[conversation.id]))
        assert response.status_code == 200, name
        assert CLEAN in response.content.decode() and no_bidi(response.content.decode()), name


def test_usernames_cannot_carry_bidi_controls(db) -> None:
    field = get_user_model()._meta.get_field("username")
    with pytest.raises(Exception, match="valid username"):
        field.run_validators("alice\u202eevil")
