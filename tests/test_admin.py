"""The admin: read-only, audited conversation review; pages closed to everyone
but staff; a bounded number of queries however much data there is."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import NoReverseMatch, reverse

from chat.models import Conversation, ConversationAccess, Message
from tests.conftest import make_user

pytestmark = pytest.mark.django_db

User = get_user_model()
MARKDOWN = "**World** domination. <script>window.pwned=1</script> [x](javascript:alert(1))"


@pytest.fixture
def root(db):
    return make_user("root", is_staff=True, is_superuser=True)


@pytest.fixture
def admin_client(root) -> Client:
    client = Client()
    client.force_login(root)
    return client


def make_conversation(owner, title: str = "Alice's plans", turns: int = 1) -> Conversation:
    conversation = Conversation.objects.create(owner=owner, title=title, model="glm-5")
    parent = None
    for index in range(turns):
        question = conversation.messages.create(
            role="user", content=f"What are my plans? #{index}", parent=parent
        )
        parent = conversation.messages.create(
            role="assistant",
            content=MARKDOWN,
            reasoning="Thinking about *plans*.",
            parent=question,
            model="glm-5",
            prompt_tokens=7,
            completion_tokens=5,
            total_tokens=12,
            finish_reason="stop",
            ttft_ms=321,
            duration_ms=4567,
        )
    return conversation


def change_url(conversation: Conversation) -> str:
    return reverse("admin:chat_conversation_change", args=[conversation.pk])


# --- Who gets in ----------------------------------------------------------------------


def test_non_staff_get_no_admin_page_usage_page_or_csv(alice, bob) -> None:
    conversation = make_conversation(bob)
    client = Client()
    client.force_login(alice)
    for url in (
        reverse("admin:index"),
        reverse("admin:chat_dailyusage_changelist"),
        reverse("admin:chat_dailyusage_user", args=[bob.pk]),
        reverse("admin:chat_dailyusage_export"),
        reverse("admin:chat_conversation_changelist"),
        change_url(conversation),
        reverse("admin:chat_conversationaccess_changelist"),
    ):
        response = client.get(url)
        assert response.status_code == 302, url
        assert response.url.startswith(reverse("admin:login")), url
    assert not ConversationAccess.objects.exists()


def test_staff_without_the_view_permission_get_no_usage(alice, bob) -> None:
    alice.is_staff = True
    alice.save()
    client = Client()
    client.force_login(alice)
    for url in (
        reverse("admin:chat_dailyusage_changelist"),
        reverse("admin:chat_dailyusage_user", args=[bob.pk]),
        reverse("admin:chat_dailyusage_export"),
    ):
        assert client.get(url).status_code == 403, url
    alice.user_permissions.add(Permission.objects.get(codename="view_dailyusage"))
    assert client.get(reverse("admin:chat_dailyusage_export")).status_code == 200


# --- Conversation review ---------------------------------------------------------------


def test_the_transcript_is_rendered_sanitized_with_its_figures(admin_client, alice) -> None:
    conversation = make_conversation(alice)

    page = admin_client.get(change_url(conversation)).content.decode()

    assert "<strong>World</strong> domination." in page
    assert "<script>window.pwned" not in page and 'href="javascript:' not in page
    assert '<details class="review-reasoning"><summary>Thinking</summary>' in page
    assert "<em>plans</em>" in page
    assert "7 prompt + 5 completion = 12 tokens" in page
    assert "first token 321 ms" in page and "took 4567 ms" in page
    assert "finish: stop" in page


def test_opening_someone_elses_conversation_is_recorded(admin_client, root, alice) -> None:
    conversation = make_conversation(alice)
    admin_client.get(change_url(conversation))
    admin_client.get(change_url(conversation))
    admin_client.get(change_url(make_conversation(root, "Mine")))

    accesses = list(ConversationAccess.objects.order_by("accessed_at"))
    assert [(a.admin, a.owner, a.conversation) for a in accesses] == [
        (root, alice, conversation)
    ] * 2
    assert accesses[0].content_shown is True
    listing = admin_client.get(reverse("admin:chat_conversationaccess_changelist"))
    assert b"alice" in listing.content and b"Alice&#x27;s plans" in listing.content


def test_admins_cannot_change_or_add_conversations_or_messages(admin_client, alice) -> None:
    conversation = make_conversation(alice)
    response = admin_client.post(change_url(conversation), {"title": "Edited by admin"})
    assert response.status_code == 403
    conversation.refresh_from_db()
    assert conversation.title == "Alice's plans"
    assert admin_client.get(reverse("admin:chat_conversation_add")).status_code == 403
    with pytest.raises(NoReverseMatch):
        reverse("admin:chat_message_changelist")
    page = admin_client.get(change_url(conversation)).content.decode()
    assert 'name="_save"' not in page and "<textarea" not in page
    access = ConversationAccess.objects.first()
    url = reverse("admin:chat_conversationaccess_delete", args=[access.pk])
    assert admin_client.post(url, {"post": "yes"}).status_code == 403


def test_with_reading_turned_off_no_text_is_shown(admin_client, alice, settings) -> None:
    settings.GLMWEB_ADMIN_CAN_READ_CONVERSATIONS = False
    conversation = make_conversation(alice, title="Secret surprise party")

    page = admin_client.get(change_url(conversation)).content.decode()
    listing = admin_client.get(reverse("admin:chat_conversation_changelist")).content.decode()
    searched = admin_client.get(reverse("admin:chat_conversation_changelist") + "?q=text:plans")

    for html in (page, listing):
        assert "domination" not in html and "What are my plans" not in html
        assert "Secret surprise" not in html
    assert "12 tokens" in page and "first token 321 ms" in page
    assert "GLMWEB_ADMIN_CAN_READ_CONVERSATIONS" in page
    assert b"0 conversations" in searched.content or b"0 results" in searched.content
    access = ConversationAccess.objects.get()
    assert access.content_shown is False and access.conversation_title == ""


def test_the_list_shows_owner_counts_and_tokens_and_searches_text(admin_client, alice, bob):
    make_conversation(alice, turns=2)
    make_conversation(bob, title="Bob's", turns=1)
    Message.objects.filter(conversation__owner=bob, role="assistant").update(status="stopped")
    url = reverse("admin:chat_conversation_changelist")

    page = admin_client.get(url).content.decode()
    assert '<td class="field-message_count">4</td>' in page
    assert '<td class="field-tokens">24</td>' in page

    found = admin_client.get(url + "?q=text:plans%3F+%231").content.decode()
    assert "Alice&#x27;s plans" in found and "Bob&#x27;s" not in found
    stopped = admin_client.get(url + "?reply_status=stopped").content.decode()
    assert "Bob&#x27;s" in stopped and "Alice&#x27;s plans" not in stopped
    by_owner = admin_client.get(url + "?q=bob").content.decode()
    assert "Bob&#x27;s" in by_owner and "Alice&#x27;s plans" not in by_owner


# --- Bounded queries -------------------------------------------------------------------


def count_queries(client: Client, url: str, django_assert_max_num_queries, limit: int) -> None:
    with django_assert_max_num_queries(limit):
        assert client.get(url).status_code == 200


def test_the_change_page_queries_do_not_grow_with_messages(
    admin_client, alice, django_assert_max_num_queries, django_assert_num_queries
) -> None:
    short, long = make_conversation(alice, turns=1), make_conversation(alice, turns=40)
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    counts = []
    for conversation in (short, long):
        with CaptureQueriesContext(connection) as queries:
            assert admin_client.get(change_url(conversation)).status_code == 200
        counts.append(len(queries))
    assert counts[0] == counts[1] <= 10, counts


def test_the_conversation_list_queries_do_not_grow_with_rows(
    admin_client, alice, django_assert_max_num_queries
) -> None:
    url = reverse("admin:chat_conversation_changelist")
    make_conversation(alice)
    count_queries(admin_client, url, django_assert_max_num_queries, 10)
    for index in range(20):
        make_conversation(alice, title=f"More {index}", turns=2)
    count_queries(admin_client, url, django_assert_max_num_queries, 10)


def test_a_persons_page_puts_access_and_limits_before_the_permission_picker(
    admin_client: Client,
) -> None:
    alice = make_user("alice")
    page = admin_client.get(reverse("admin:auth_user_change", args=[alice.pk])).content.decode()

    # Django 5.1+ renders a collapsed fieldset as a closed <details>.
    permissions = page.index('name="user_permissions"')
    assert page.rfind("<details", 0, permissions) > page.rfind("</details>", 0, permissions)
    assert page.index('id="id_groups"') < permissions  # groups as checkboxes
    assert 'name="limits-0-tokens_per_day"' in page

    response = admin_client.post(
        reverse("admin:auth_user_change", args=[alice.pk]),
        {
            "username": "alice",
            "is_active": "on",
            "date_joined_0": "2026-01-01",
            "date_joined_1": "00:00:00",
            "limits-TOTAL_FORMS": "1",
            "limits-INITIAL_FORMS": "0",
            "limits-MIN_NUM_FORMS": "0",
            "limits-MAX_NUM_FORMS": "1",
            "limits-0-user": alice.pk,
            "limits-0-tokens_per_day": "5000",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    alice.limits.refresh_from_db()
    assert alice.limits.tokens_per_day == 5000
