"""Token usage: the ledger adds up to exactly what the upstream reported, plus
our marked estimates for replies it never counted; each person sees their own."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model
from django.db.models import Sum
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from bench.fake_upstream import Scenario, prompt_tokens_for
from chat.models import Conversation, DailyUsage, Message
from chat.usage import figures
from chat.usage import ledger as usage
from tests.conftest import make_user, open_socket

pytestmark = pytest.mark.django_db(transaction=True)
User = get_user_model()


def ledger_totals(user_id: int) -> dict[str, int]:
    return DailyUsage.objects.filter(user_id=user_id).aggregate(
        prompt=Sum("prompt_tokens", default=0),
        completion=Sum("completion_tokens", default=0),
        total=Sum("total_tokens", default=0),
        replies=Sum("replies", default=0),
        estimated=Sum("estimated_total_tokens", default=0),
        estimated_replies=Sum("estimated_replies", default=0),
    )


def saved_estimates(user_id: int) -> int:
    return Message.objects.filter(conversation__owner_id=user_id, usage_estimated=True).aggregate(
        total=Sum("total_tokens", default=0)
    )["total"]


async def test_totals_equal_the_upstreams_usage_plus_marked_estimates(alice, fake, settings):
    settings.UPSTREAM_MAX_RETRIES = 0
    socket = await open_socket(alice)
    reported = []  # what the fake upstream itself put in its usage chunks

    # Two complete replies, usage in the last chunk and in a chunk of its own.
    for scenario in (
        Scenario(tokens=30, reasoning_tokens=5),
        Scenario(tokens=7, usage_separate=True),
    ):
        fake.scenario = scenario
        events = await socket.turn("Count these tokens for me")
        assert events[-1]["status"] == "complete"
        completion = scenario.tokens + scenario.reasoning_tokens
        reported.append(prompt_tokens_for(fake.requests[-1]) + completion)
        assert events[-1]["usage"]["total_tokens"] == reported[-1]

    # Stopped by the person: the upstream never sent usage.
    fake.scenario = Scenario(tokens=500, reasoning_tokens=0, delay=0.02)
    await socket.send_message("A long one")
    conversation = (await socket.until("delta"))[0]["conversation"]
    await socket.send(type="stop", conversation=conversation)
    stopped = (await socket.until("done"))[-1]
    assert stopped["status"] == "stopped" and stopped["usage"]["estimated"] is True

    # Cut mid-stream, and refused before any token.
    for scenario in (Scenario(tokens=50, cut_after=5), Scenario(status=503)):
        fake.scenario = scenario
        failed = (await socket.turn("Will this fail?"))[-1]
        assert failed["type"] == "error"
    await socket.close()

    totals = await database_sync_to_async(ledger_totals)(alice.id)
    estimates = await database_sync_to_async(saved_estimates)(alice.id)
    assert totals["replies"] == 5
    assert totals["estimated_replies"] == 3
    assert totals["estimated"] == estimates > 0
    assert totals["total"] - totals["estimated"] == sum(reported)
    assert totals["total"] == totals["prompt"] + totals["completion"]


def test_the_ledger_equals_a_rebuild_from_the_saved_replies(alice, bob) -> None:
    for owner, tokens in ((alice, 10), (alice, 20), (bob, 5)):
        conversation = Conversation.objects.create(owner=owner, model="glm-5")
        question = conversation.messages.create(role="user", content="q")
        reply = conversation.messages.create(
            role="assistant",
            parent=question,
            model="glm-5",
            prompt_tokens=tokens,
            completion_tokens=tokens * 2,
            total_tokens=tokens * 3,
            usage_estimated=tokens == 20,
        )
        usage.record_reply(reply.id)
    incremental = sorted(
        DailyUsage.objects.values_list(
            "user_id", "day", "model", "total_tokens", "replies", "estimated_total_tokens"
        )
    )
    usage.rebuild_ledger()
    rebuilt = sorted(
        DailyUsage.objects.values_list(
            "user_id", "day", "model", "total_tokens", "replies", "estimated_total_tokens"
        )
    )
    assert (
        incremental
        == rebuilt
        == [
            (alice.id, timezone.localdate(), "glm-5", 90, 2, 60),
            (bob.id, timezone.localdate(), "glm-5", 15, 1, 0),
        ]
    )


def test_deleting_a_conversation_keeps_its_tokens_counted(alice) -> None:
    conversation = Conversation.objects.create(owner=alice, model="glm-5")
    reply = conversation.messages.create(
        role="assistant", model="glm-5", prompt_tokens=1, completion_tokens=2, total_tokens=3
    )
    usage.record_reply(reply.id)
    conversation.delete()
    assert figures.windows_for(alice.id).today.total == 3


def add_usage(
    user, days_ago: int, prompt: int, completion: int, model: str = "glm-5", estimated: int = 0
) -> None:
    DailyUsage.objects.create(
        user=user,
        day=timezone.localdate() - timedelta(days=days_ago),
        model=model,
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=prompt + completion,
        replies=1,
        estimated_total_tokens=estimated,
        estimated_replies=1 if estimated else 0,
    )


def test_windows_cover_today_seven_thirty_days_and_all_time(alice) -> None:
    add_usage(alice, 0, 10, 1)
    add_usage(alice, 6, 100, 10)
    add_usage(alice, 7, 1000, 100, model="glm-4.6")
    add_usage(alice, 29, 10_000, 1000)
    add_usage(alice, 30, 100_000, 10_000, estimated=50)

    windows = figures.windows_for(alice.id)
    assert (windows.today.prompt, windows.today.completion, windows.today.total) == (10, 1, 11)
    assert windows.week.total == 121
    assert windows.month30.total == 12_221
    assert windows.all_time.total == 122_221
    assert (windows.estimated_tokens, windows.estimated_replies) == (50, 1)
    models = {row["model"]: row["total"] for row in figures.by_model(alice.id)}
    assert models == {"glm-5": 121_121, "glm-4.6": 1100}
    days = figures.daily(alice.id)
    assert len(days) == 30 and days[-1].day == timezone.localdate()
    assert [d.total for d in days if d.total] == [11_000, 1100, 110, 11]


# --- Each person's own usage page ---------------------------------------------------


def test_a_person_sees_their_own_usage_and_remaining_quota(alice, bob, settings) -> None:
    settings.GLMWEB_LIMIT_TOKENS_PER_DAY = 1000
    add_usage(alice, 0, 200, 50)
    add_usage(bob, 0, 77_000, 700)
    client = Client()
    client.force_login(alice)

    page = client.get(reverse("chat:usage")).content.decode()

    assert "250" in page and "750" in page  # used today, and what remains of 1,000
    assert "77,700" not in page and "77,000" not in page
    assert "can read conversations" in page
    settings.GLMWEB_ADMIN_CAN_READ_CONVERSATIONS = False
    assert "cannot read your conversations" in client.get(reverse("chat:usage")).content.decode()


def test_the_usage_page_needs_a_login(client) -> None:
    response = client.get(reverse("chat:usage"))
    assert response.status_code == 302 and response.url.startswith(reverse("login"))


# --- The admin's usage page ------------------------------------------------------------


@pytest.fixture
def admin_client(db) -> Client:
    root = make_user("root", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(root)
    return client


def test_the_admin_usage_page_lists_everyone_with_their_figures(admin_client, alice, bob):
    add_usage(alice, 0, 1200, 34)
    add_usage(alice, 10, 5, 5, estimated=10)
    add_usage(bob, 40, 3, 4)

    page = admin_client.get(reverse("admin:chat_dailyusage_changelist")).content.decode()

    assert "1,234" in page  # alice today
    assert "1,244" in page  # alice over 30 days
    assert "≈" in page  # estimated figures are marked
    assert page.index('data-user="alice"') < page.index(
        'data-user="bob"'
    )  # sorted by today, most first
    by_name = admin_client.get(
        reverse("admin:chat_dailyusage_changelist") + "?o=user&dir=asc"
    ).content.decode()
    assert (
        by_name.index('data-user="alice"')
        < by_name.index('data-user="bob"')
        < by_name.index('data-user="root"')
    )
    today = timezone.localdate()
    ranged = admin_client.get(
        reverse("admin:chat_dailyusage_changelist")
        + f"?from={today - timedelta(days=45)}&to={today - timedelta(days=35)}"
    ).content.decode()
    assert 'data-user="bob"' in ranged and 'data-user="alice"' not in ranged


def test_the_csv_export_has_every_figure(admin_client, alice, bob) -> None:
    add_usage(alice, 0, 1200, 34)
    add_usage(bob, 3, 7, 3, estimated=10)

    response = admin_client.get(reverse("admin:chat_dailyusage_export") + "?o=user&dir=asc")

    assert response["Content-Type"] == "text/csv"
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    by_name = {row["username"]: row for row in rows}
    assert [row["username"] for row in rows] == ["alice", "bob", "root"]
    assert by_name["alice"]["today_prompt"] == "1200"
    assert by_name["alice"]["today_total"] == "1234"
    assert by_name["bob"]["today_total"] == "0"
    assert by_name["bob"]["7d_total"] == "10"
    assert by_name["bob"]["estimated_tokens"] == "10"


def test_the_per_user_page_has_the_chart_and_models(admin_client, alice) -> None:
    add_usage(alice, 0, 100, 20)
    add_usage(alice, 3, 1000, 1, model="glm-4.6")

    page = admin_client.get(reverse("admin:chat_dailyusage_user", args=[alice.id])).content.decode()

    assert 'data-total="120"' in page and 'data-total="1001"' in page
    assert page.count('class="chart-day"') == 30
    assert 'data-model="glm-4.6"' in page and 'data-model="glm-5"' in page


def test_usage_queries_do_not_grow_with_people(admin_client, django_assert_max_num_queries):
    for index in range(3):
        add_usage(User.objects.create(username=f"person{index}"), 0, 10, 10)
    url = reverse("admin:chat_dailyusage_changelist")
    with django_assert_max_num_queries(8):
        assert admin_client.get(url).status_code == 200
    for index in range(3, 30):
        person = User.objects.create(username=f"person{index}")  # no slow password hash
        add_usage(person, 1, 10, 10)
        Conversation.objects.create(owner=person, model="glm-5")
    with django_assert_max_num_queries(8):
        assert admin_client.get(url).status_code == 200
    with django_assert_max_num_queries(12):
        admin_client.get(reverse("admin:chat_dailyusage_user", args=[person.id]))
