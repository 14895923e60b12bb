"""The admin's landing page: today's tokens, people, replies streaming now, the last
hour's provider errors, sign-ups waiting; only for staff; a few queries however big."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from chat.models import ChatModel, Conversation, DailyUsage, Message, SignupApproval
from tests.conftest import make_user

pytestmark = pytest.mark.django_db

INDEX = reverse("admin:index")


@pytest.fixture
def root(db: None) -> Any:
    return make_user("root", is_staff=True, is_superuser=True)


@pytest.fixture
def admin_client(root: Any) -> Client:
    client = Client()
    client.force_login(root)
    return client


def spend(
    user: Any, tokens: int, replies: int, days_ago: int = 0, model: str = "glm-5", cost: str = "0"
) -> None:
    DailyUsage.objects.create(
        cost=Decimal(cost),
        user=user,
        day=timezone.localdate() - timedelta(days=days_ago),
        model=model,
        prompt_tokens=tokens // 2,
        completion_tokens=tokens - tokens // 2,
        total_tokens=tokens,
        replies=replies,
    )


def reply(owner: Any, status: str, error_code: str = "", age: timedelta = timedelta()) -> Message:
    conversation = Conversation.objects.create(owner=owner, title="Plans", model="glm-5")
    question = conversation.messages.create(role="user", content="Hi")
    message = conversation.messages.create(
        role="assistant", parent=question, status=status, error_code=error_code, model="glm-5"
    )
    if age:
        moment = timezone.now() - age
        Message.objects.filter(pk=message.pk).update(created_at=moment, updated_at=moment)
    return message


def figure(page: str, name: str) -> str:
    marker = f'data-figure="{name}">'
    start = page.index(marker) + len(marker)
    return page[start : page.index("<", start)]


def test_it_shows_todays_figures(admin_client: Client, alice: Any, bob: Any) -> None:
    spend(alice, 1200, 3)
    spend(alice, 300, 1, model="glm-4.5")
    spend(bob, 4000, 2)
    spend(bob, 99_999, 50, days_ago=1)  # yesterday: not today's
    reply(alice, Message.Status.STREAMING)
    reply(bob, Message.Status.STREAMING, age=timedelta(hours=2))  # stale: not streaming
    reply(alice, Message.Status.ERROR, "rate_limited")
    reply(alice, Message.Status.ERROR, "rate_limited")
    reply(bob, Message.Status.ERROR, "upstream_unreachable")
    reply(bob, Message.Status.ERROR, "rate_limited", age=timedelta(hours=2))  # too old

    page = admin_client.get(INDEX).content.decode()

    assert figure(page, "tokens-today") == "5,500"
    assert figure(page, "people-today") == "2"
    assert figure(page, "streaming-now") == "1"
    assert figure(page, "errors-last-hour") == "3"
    assert "rate_limited (2), upstream_unreachable (1)" in page
    top = page[page.index("Most tokens today") :]
    assert top.index(">bob<") < top.index(">alice<")  # most tokens first
    assert 'data-figure="signups-waiting"' not in page  # none waiting: no card


def test_it_shows_todays_cost_once_a_model_has_a_price(
    admin_client: Client, alice: Any, bob: Any, settings: Any
) -> None:
    settings.GLMWEB_CURRENCY = "EUR"
    spend(alice, 1000, 1, cost="0.012345")
    spend(bob, 1000, 1, cost="1.5")
    assert 'data-figure="cost-today"' not in admin_client.get(INDEX).content.decode()

    ChatModel.objects.filter(name="glm-5").update(output_price_per_million=Decimal("2.50"))
    page = admin_client.get(INDEX).content.decode()
    assert figure(page, "cost-today") == "1.51 EUR"


def test_it_points_to_signups_waiting(admin_client: Client) -> None:
    carol = make_user("carol", is_active=False)
    SignupApproval.objects.create(user=carol)

    page = admin_client.get(INDEX).content.decode()

    assert figure(page, "signups-waiting") == "1"
    assert reverse("admin:chat_signupapproval_changelist") in page


def test_the_app_list_is_still_there(admin_client: Client) -> None:
    page = admin_client.get(INDEX).content.decode()
    assert "Today at a glance" in page
    assert reverse("admin:chat_conversation_changelist") in page
    assert reverse("admin:auth_user_changelist") in page


def test_only_staff_see_it(client: Client, alice: Any) -> None:
    client.force_login(alice)
    response = client.get(INDEX)
    assert response.status_code == 302
    assert "tokens-today" not in response.content.decode()


def test_staff_who_may_not_see_usage_get_the_plain_index(client: Client, alice: Any) -> None:
    spend(alice, 1200, 3)
    helper = make_user("helper", is_staff=True)
    helper.user_permissions.add(Permission.objects.get(codename="view_conversation"))
    client.force_login(helper)
    page = client.get(INDEX).content.decode()
    assert "tokens-today" not in page
    assert reverse("admin:chat_conversation_changelist") in page

    helper.user_permissions.add(Permission.objects.get(codename="view_dailyusage"))
    page = client.get(INDEX).content.decode()
    assert figure(page, "tokens-today") == "1,200"


def test_its_queries_do_not_grow_with_the_data(
    admin_client: Client, alice: Any, bob: Any, django_assert_max_num_queries: Any
) -> None:
    for index in range(30):
        spend(make_user(f"user{index}"), 100 + index, 1)
        reply(alice, Message.Status.ERROR, f"code{index % 4}")
    with django_assert_max_num_queries(16):
        admin_client.get(INDEX)
