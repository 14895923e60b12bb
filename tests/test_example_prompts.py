"""A new chat's example prompts: the admin's rows (four to start with), the enabled
ones in their order, on new chats only; the page marks a chat's custom settings."""

from __future__ import annotations

import re
from typing import Any

from django.test import Client
from django.urls import reverse

from chat.models import Conversation, ExamplePrompt


def page_of(user: Any, path: str = "/") -> str:
    client = Client()
    client.force_login(user)
    return client.get(path).content.decode()


def marker_tag(page: str) -> str:
    found = re.search(r'<button[^>]*id="custom-marker"[^>]*>', page)
    assert found is not None
    return found.group(0)


def test_a_fresh_database_offers_four_examples(alice: Any) -> None:
    titles = list(ExamplePrompt.objects.shown().values_list("title", flat=True))
    assert titles == ["Explain a concept", "Write some code", "Plan a trip", "Polish my writing"]
    page = page_of(alice)
    assert page.count('class="example"') == 4


def test_only_the_enabled_show_in_the_admins_order(alice: Any) -> None:
    ExamplePrompt.objects.filter(title="Plan a trip").update(enabled=False)
    ExamplePrompt.objects.filter(title="Polish my writing").update(position=0)
    ExamplePrompt.objects.filter(title="Explain a concept").update(position=9)
    page = page_of(alice)
    assert "Plan a trip" not in page
    titles = ExamplePrompt.objects.values_list("title", flat=True)
    order = sorted((page.index(title), title) for title in titles if title in page)
    assert [title for _, title in order] == [
        "Polish my writing",
        "Write some code",
        "Explain a concept",
    ]


def test_a_conversation_page_has_no_examples_and_marks_custom_instructions(
    alice: Any,
) -> None:
    conversation = Conversation.objects.create(owner=alice, title="Plans", model="glm-5")
    page = page_of(alice, f"/c/{conversation.id}/")
    assert 'class="example"' not in page
    assert " hidden" in marker_tag(page)

    conversation.system_prompt = "Be brief."
    conversation.save()
    page = page_of(alice, f"/c/{conversation.id}/")
    assert " hidden" not in marker_tag(page)
    assert "Custom instructions" in page


def test_the_admin_edits_them(admin_client: Client) -> None:
    listing = admin_client.get(reverse("admin:chat_exampleprompt_changelist"))
    assert listing.status_code == 200
    assert "Write some code" in listing.content.decode()
