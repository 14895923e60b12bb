"""Announcements: who sees a banner and when, what of its body survives, and dismissing
it (per person, remembered by the server, login and CSRF required)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from chat.models import Announcement, AnnouncementDismissal
from tests.conftest import make_user

pytestmark = pytest.mark.django_db

HOSTILE_BODY = (
    "Read <script>alert('banner')</script> this, [the notes](javascript:alert(1)), "
    '<a href="javascript:alert(3)">this</a>, <javascript:alert(4)> '
    "and <img src=x onerror=alert(2)> **now**, then [the plan](https://example.org/plan)."
)


def make_announcement(title: str = "Maintenance tonight", **fields: Any) -> Announcement:
    groups = fields.pop("groups", [])
    announcement = Announcement.objects.create(
        title=title, body=fields.pop("body", "We restart at **22:00**."), **fields
    )
    announcement.groups.set(groups)
    return announcement


def logged_in(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def banners(client: Client) -> str:
    """The announcements area of the chat page, as served."""
    page = client.get(reverse("chat:home"))
    assert page.status_code == 200
    found = re.search(
        r'<div class="announcements".*?</section>\s*</div>', page.content.decode(), re.S
    )
    return found.group(0) if found else ""


def titles_for(user: Any, now: datetime | None = None) -> list[str]:
    active = Announcement.objects.active_for(user, now or timezone.now())
    return [announcement.title for announcement in active]


def dismiss(client: Client, announcement: Announcement) -> Any:
    return client.post(reverse("chat:dismiss_announcement", args=[announcement.pk]))


# --- Audience and dates ------------------------------------------------------------


def test_an_announcement_without_groups_is_for_everyone(alice, bob) -> None:
    make_announcement()
    assert titles_for(alice) == titles_for(bob) == ["Maintenance tonight"]
    assert "Maintenance tonight" in banners(logged_in(bob))


def test_an_announcement_for_groups_shows_to_their_members_only(alice, bob) -> None:
    sales, support = Group.objects.create(name="sales"), Group.objects.create(name="support")
    carol = make_user("carol")
    alice.groups.add(sales)
    carol.groups.add(support, sales)  # in both groups: still one banner
    make_announcement("Sales kick-off", groups=[sales, support])
    assert titles_for(alice) == ["Sales kick-off"]
    assert titles_for(carol) == ["Sales kick-off"]
    assert titles_for(bob) == []
    assert "Sales kick-off" in banners(logged_in(alice))
    assert banners(logged_in(bob)) == ""


def test_an_announcement_shows_only_between_its_dates(alice) -> None:
    now = timezone.now()
    make_announcement("Upcoming", starts_at=now + timedelta(hours=1))
    make_announcement("Over", ends_at=now - timedelta(minutes=1))
    make_announcement(
        "Running", starts_at=now - timedelta(hours=1), ends_at=now + timedelta(hours=1)
    )
    assert titles_for(alice, now) == ["Running"]
    assert set(titles_for(alice, now + timedelta(minutes=90))) == {"Upcoming"}
    assert titles_for(alice, now - timedelta(hours=2)) == ["Over"]
    page = banners(logged_in(alice))
    assert "Running" in page and "Upcoming" not in page and "Over" not in page


def test_the_end_comes_after_the_start() -> None:
    now = timezone.now()
    announcement = Announcement(title="Backwards", body="x", starts_at=now, ends_at=now)
    with pytest.raises(ValidationError) as raised:
        announcement.full_clean()
    assert "ends_at" in raised.value.message_dict
    assert str(announcement) == "Backwards"


def test_several_announcements_stack_newest_first(alice) -> None:
    # Newest by when each began to show, whatever order they were written in.
    now = timezone.now()
    make_announcement("This morning's", starts_at=now - timedelta(hours=2))
    make_announcement("A week old", starts_at=now - timedelta(days=7))
    make_announcement("Unscheduled")  # shows from when it was saved: just now
    make_announcement("Yesterday's", starts_at=now - timedelta(days=1))
    expected = ["Unscheduled", "This morning's", "Yesterday's", "A week old"]
    assert titles_for(alice) == expected
    page = banners(logged_in(alice))
    assert [page.index(title.replace("'", "&#x27;")) for title in expected] == sorted(
        page.index(title.replace("'", "&#x27;")) for title in expected
    )


# --- What survives of the body -----------------------------------------------------


def assert_sanitized(html: str) -> None:
    # The markdown did render, safe links included; what remains of the rest is text.
    assert "<strong>now</strong>" in html
    assert re.findall(r"<a\b[^>]*>", html) == [
        '<a href="https://example.org/plan" rel="noopener noreferrer nofollow">'
    ]
    assert set(re.findall(r"<(\w+)", html)) == {"p", "strong", "a"}
    assert "&lt;script&gt;" in html


def test_the_chat_page_shows_the_body_sanitized(alice) -> None:
    make_announcement(body=HOSTILE_BODY)
    page = logged_in(alice).get(reverse("chat:home")).content.decode()
    body = re.search(r'<div class="announcement-body">(.*?)</div>', page, re.S)
    assert body is not None
    assert_sanitized(body.group(1))
    assert re.search(r"<a\b[^>]*javascript", page) is None
    assert "<script>alert" not in page


def test_the_admin_preview_shows_the_body_sanitized(admin_client) -> None:
    announcement = make_announcement(body=HOSTILE_BODY)
    url = reverse("admin:chat_announcement_change", args=[announcement.pk])
    page = admin_client.get(url).content.decode()
    preview = re.search(r'<div class="announcement-preview">(.*?)</div>', page, re.S)
    assert preview is not None
    assert_sanitized(preview.group(1))
    # The raw text is only in the form's textarea, escaped.
    assert "<script>alert('banner')" not in page


def test_the_admin_list_shows_window_audience_and_dismissals(admin_client, alice, bob) -> None:
    sales = Group.objects.create(name="sales")
    make_announcement("For sales", groups=[sales])
    everyone = make_announcement("For all", ends_at=timezone.now() + timedelta(days=2))
    everyone.dismiss_for(alice)
    everyone.dismiss_for(bob)
    page = admin_client.get(reverse("admin:chat_announcement_changelist")).content.decode()
    row = re.search(r"For all</a>.*?</tr>", page, re.S).group(0)
    assert "everyone" in row and "until" in row and ">2<" in row
    row = re.search(r"For sales</a>.*?</tr>", page, re.S).group(0)
    assert "sales" in row and "always" in row and ">0<" in row


# --- Dismissing --------------------------------------------------------------------


def test_a_dismissal_is_per_person_and_remembered(alice, bob) -> None:
    announcement = make_announcement()
    alices = logged_in(alice)
    response = dismiss(alices, announcement)
    assert response.status_code == 204
    assert dismiss(alices, announcement).status_code == 204  # twice is once
    assert AnnouncementDismissal.objects.filter(announcement=announcement).count() == 1
    # A new session (another device) doesn't show it either.
    assert banners(logged_in(alice)) == ""
    assert "Maintenance tonight" in banners(logged_in(bob))


def test_bob_cannot_dismiss_for_alice(alice, bob) -> None:
    announcement = make_announcement()
    url = reverse("chat:dismiss_announcement", args=[announcement.pk])
    response = logged_in(bob).post(url, {"user": alice.pk, "user_id": alice.pk})
    assert response.status_code == 204
    assert list(announcement.dismissed_by.all()) == [bob]
    assert "Maintenance tonight" in banners(logged_in(alice))


def test_an_announcement_not_addressed_to_you_cannot_be_dismissed(alice, bob) -> None:
    sales = Group.objects.create(name="sales")
    alice.groups.add(sales)
    announcement = make_announcement(groups=[sales])
    assert dismiss(logged_in(bob), announcement).status_code == 404
    assert dismiss(logged_in(alice), announcement).status_code == 204
    missing = reverse("chat:dismiss_announcement", args=[announcement.pk + 1000])
    assert logged_in(alice).post(missing).status_code == 404


def test_dismissing_needs_a_login(client) -> None:
    announcement = make_announcement()
    response = dismiss(client, announcement)
    assert response.status_code == 302 and response.url.startswith(reverse("login"))
    assert not AnnouncementDismissal.objects.exists()


def test_dismissing_needs_a_post_and_the_csrf_token(alice) -> None:
    announcement = make_announcement()
    url = reverse("chat:dismiss_announcement", args=[announcement.pk])
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(alice)
    assert strict.get(url).status_code == 405
    assert strict.post(url).status_code == 403
    assert not AnnouncementDismissal.objects.exists()
    strict.get(reverse("chat:home"))  # the page sets the CSRF cookie its script sends back
    token = strict.cookies["csrftoken"].value
    assert strict.post(url, HTTP_X_CSRFTOKEN=token).status_code == 204
    assert AnnouncementDismissal.objects.filter(user=alice).count() == 1


# --- Cost on the chat page ---------------------------------------------------------


def page_queries(client: Client) -> list[str]:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(reverse("chat:home")).status_code == 200
    return [query["sql"] for query in queries.captured_queries]


def test_the_banners_cost_the_chat_page_one_query(alice) -> None:
    client = logged_in(alice)
    page_queries(client)  # once, so that what runs only on a first page (recovery) is done
    without = page_queries(client)
    sales, support = Group.objects.create(name="sales"), Group.objects.create(name="support")
    alice.groups.add(sales, support)
    for index in range(6):
        make_announcement(f"Note {index}", groups=[sales, support] if index % 2 else [])
    make_announcement("Dismissed").dismiss_for(alice)
    with_banners = page_queries(client)
    assert len(with_banners) == len(without)
    touching = [sql for sql in with_banners if "chat_announcement" in sql]
    assert len(touching) == 1, touching
    assert banners(client).count("<section") == 6
