"""The sidebar over HTTP: date groups, a bounded list, rename, pin, archive,
delete, search; each action owner-checked and CSRF-protected."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from chat.models import Conversation, Message

pytestmark = pytest.mark.django_db


def make_conversation(owner, title: str = "Alice's plans", days_ago: int = 0, **fields):
    conversation = Conversation.objects.create(owner=owner, title=title, model="glm-5", **fields)
    question = conversation.messages.create(role="user", content="What are my plans for Lisbon?")
    conversation.messages.create(role="assistant", content="See the tiles museum.", parent=question)
    when = timezone.now() - timedelta(days=days_ago)
    Conversation.objects.filter(id=conversation.id).update(updated_at=when)
    conversation.refresh_from_db()
    return conversation


def logged_in(user, **kwargs) -> Client:
    client = Client(**kwargs)
    client.force_login(user)
    return client


def sidebar_groups(html: str) -> list[str]:
    import re

    return re.findall(r'<section class="conv-group" data-group="([^"]+)"', html)


def test_the_sidebar_groups_conversations_by_date(alice) -> None:
    make_conversation(alice, "Old one", days_ago=400)
    make_conversation(alice, "Last week", days_ago=4)
    make_conversation(alice, "Yesterday's", days_ago=1)
    make_conversation(alice, "Fresh")
    make_conversation(alice, "Pinned long ago", days_ago=90, pinned=True)
    make_conversation(alice, "Put away", archived=True)
    make_conversation(alice, "Last month", days_ago=20)

    html = logged_in(alice).get(reverse("chat:home")).content.decode()

    groups = sidebar_groups(html)
    assert groups[:5] == ["Pinned", "Today", "Yesterday", "Previous 7 days", "Previous 30 days"]
    assert len(groups) == 6  # and the month of the oldest
    order = ["Pinned long ago", "Fresh", "Yesterday&#x27;s", "Last week", "Last month", "Old one"]
    assert [html.index(f">{title}</a>") for title in order] == sorted(
        html.index(f">{title}</a>") for title in order
    )
    assert "Put away" not in html


def test_the_sidebar_is_bounded_and_shows_more_on_request(alice, settings) -> None:
    settings.GLMWEB_SIDEBAR_PAGE = 5
    Conversation.objects.bulk_create(
        Conversation(owner=alice, title=f"Chat {n}", model="glm-5") for n in range(12)
    )
    client = logged_in(alice)

    html = client.get(reverse("chat:home")).content.decode()
    assert html.count('class="conv-item"') == 5
    assert 'id="show-more" data-next="5"' in html

    second = client.get(reverse("chat:conversation_list"), {"offset": 5}).json()
    third = client.get(reverse("chat:conversation_list"), {"offset": 10}).json()
    assert (len(second["conversations"]), second["next"]) == (5, "10")
    assert (len(third["conversations"]), third["next"]) == (2, "")
    titles = {c["title"] for c in second["conversations"] + third["conversations"]}
    assert len(titles) == 7 and all(c["group"] == "Today" for c in third["conversations"])


def test_the_archived_view_lists_only_archived_chats(alice) -> None:
    make_conversation(alice, "Active")
    make_conversation(alice, "Put away", archived=True, pinned=True)

    data = logged_in(alice).get(reverse("chat:conversation_list"), {"archived": "1"}).json()

    assert [(c["title"], c["group"]) for c in data["conversations"]] == [("Put away", "Today")]


def test_rename_sets_a_title_the_model_will_not_replace(alice) -> None:
    conversation = make_conversation(alice, days_ago=3)
    response = logged_in(alice).post(
        reverse("chat:rename", args=[conversation.id]), {"title": "  Trip   to Lisbon "}
    )

    assert response.status_code == 200
    assert response.json()["title"] == "Trip to Lisbon"
    conversation.refresh_from_db()
    assert (conversation.title, conversation.title_source) == ("Trip to Lisbon", "user")
    assert conversation.updated_at < timezone.now() - timedelta(days=2)  # keeps its place


@pytest.mark.parametrize("title", ["", "   ", "x" * 201])
def test_a_bad_title_is_refused_and_nothing_changes(alice, title) -> None:
    conversation = make_conversation(alice)
    response = logged_in(alice).post(
        reverse("chat:rename", args=[conversation.id]), {"title": title}
    )

    assert response.status_code == 400
    assert response.json()["error"]
    conversation.refresh_from_db()
    assert (conversation.title, conversation.title_source) == ("Alice's plans", "message")


def test_pin_and_archive_answer_with_the_new_state(alice) -> None:
    conversation = make_conversation(alice, days_ago=2)
    client = logged_in(alice)

    pinned = client.post(reverse("chat:pin", args=[conversation.id]), {"value": "true"}).json()
    assert pinned["conversation"]["pinned"] is True
    assert pinned["conversation"]["group"] == "Pinned"
    unpinned = client.post(reverse("chat:pin", args=[conversation.id]), {"value": "false"}).json()
    assert unpinned["conversation"]["group"] == "Previous 7 days"

    archived = client.post(reverse("chat:archive", args=[conversation.id]), {"value": "true"})
    assert archived.json()["conversation"]["archived"] is True
    assert "Alice&#x27;s plans" not in client.get(reverse("chat:home")).content.decode()
    bad = client.post(reverse("chat:archive", args=[conversation.id]), {"value": "maybe"})
    assert bad.status_code == 400
    conversation.refresh_from_db()
    assert conversation.archived and not conversation.pinned


def test_delete_from_the_page_answers_json(alice) -> None:
    conversation = make_conversation(alice)
    response = logged_in(alice).post(
        reverse("chat:delete", args=[conversation.id]), HTTP_ACCEPT="application/json"
    )
    assert response.json() == {"deleted": str(conversation.id)}
    assert not Conversation.objects.exists() and not Message.objects.exists()


def test_every_action_is_not_found_for_another_user(alice, bob) -> None:
    conversation = make_conversation(alice)
    bobs = logged_in(bob)
    posts = {
        "chat:rename": {"title": "Mine now"},
        "chat:pin": {"value": "true"},
        "chat:archive": {"value": "true"},
        "chat:delete": {},
    }
    for name, data in posts.items():
        assert bobs.post(reverse(name, args=[conversation.id]), data).status_code == 404, name
    for name in ("chat:export_json", "chat:export_md"):
        assert bobs.get(reverse(name, args=[conversation.id])).status_code == 404, name
    assert bobs.get(reverse("chat:search"), {"q": "Lisbon"}).json()["results"] == []
    assert bobs.get(reverse("chat:conversation_list")).json()["conversations"] == []
    conversation.refresh_from_db()
    assert (conversation.title, conversation.pinned, conversation.archived) == (
        "Alice's plans",
        False,
        False,
    )


def test_actions_need_post_a_login_and_a_csrf_token(alice, client) -> None:
    conversation = make_conversation(alice)
    url = reverse("chat:rename", args=[conversation.id])
    assert logged_in(alice).get(url).status_code == 405
    assert client.post(url, {"title": "x"}).status_code == 302  # to the login page
    strict = logged_in(alice, enforce_csrf_checks=True)
    assert strict.post(url, {"title": "No token"}).status_code == 403
    strict.get(reverse("chat:home"))
    token = strict.cookies["csrftoken"].value
    assert strict.post(url, {"title": "With token"}, HTTP_X_CSRFTOKEN=token).status_code == 200
    conversation.refresh_from_db()
    assert conversation.title == "With token"


def test_search_finds_titles_and_message_text_with_a_snippet(alice) -> None:
    by_title = make_conversation(alice, "Lisbon tiles", days_ago=1)
    by_text = make_conversation(alice, "Holiday", days_ago=2)
    by_text.messages.create(role="user", content="Is the tram 28 in LISBON worth it at night?")
    archived = make_conversation(alice, "Old trip", days_ago=3, archived=True)
    make_conversation(alice, "Cooking").messages.all().update(content="Pasta")

    results = logged_in(alice).get(reverse("chat:search"), {"q": "lisbon"}).json()["results"]

    found = {r["id"]: r for r in results}
    assert list(found) == [str(by_title.id), str(by_text.id), str(archived.id)]
    assert found[str(by_title.id)]["matched"] == "title"
    assert found[str(by_text.id)]["matched"] == "message"
    assert "Lisbon" in found[str(by_text.id)]["snippet"]
    assert found[str(archived.id)]["archived"] is True


def test_an_empty_search_finds_nothing(alice) -> None:
    make_conversation(alice)
    assert logged_in(alice).get(reverse("chat:search"), {"q": "  "}).json()["results"] == []


def test_five_thousand_conversations_make_a_small_page(
    alice, django_assert_max_num_queries
) -> None:
    Conversation.objects.bulk_create(
        (Conversation(owner=alice, title=f"Chat number {n}", model="glm-5") for n in range(5000)),
        batch_size=1000,
    )
    client = logged_in(alice)

    with django_assert_max_num_queries(12):
        html = client.get(reverse("chat:home")).content.decode()

    assert html.count('class="conv-item"') == 200
    assert 'data-next="200"' in html
    assert len(html) < 200_000
