"""Money: each reply is priced when it is saved, and a monthly budget (a group's or a
person's) refuses a reply before any upstream request once it is spent, and caps a
reply to what it leaves, so sends at once overspend it by at most one reply."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth.models import Group
from django.db import connection
from django.db.models import Sum
from django.test import Client

from bench.fake_upstream import FakeUpstream, Scenario
from chat.models import ChatModel, DailyUsage, GroupPolicy, Message
from chat.turns import starting
from chat.usage import limits
from tests.conftest import open_socket, use_models
from tests.servers import App, RemoteSocket, glmweb_app, login_cookie

pytestmark = pytest.mark.django_db(transaction=True)
MILLION = Decimal(1_000_000)


@pytest.fixture(autouse=True)
def priced_model(settings: Any, transactional_db: None) -> None:
    settings.UPSTREAM_MODEL = "glm-5"
    settings.GLMWEB_LIMIT_CONCURRENT_GENERATIONS = 0
    settings.GLMWEB_LIMIT_TOKENS_PER_DAY = 0
    settings.GLMWEB_LIMIT_TOKENS_PER_MONTH = 0
    settings.GLMWEB_CURRENCY = "USD"
    use_models(
        {
            "name": "glm-5",
            "context_tokens": 128_000,
            "thinking": True,
            "input_price_per_million": Decimal(100),
            "output_price_per_million": Decimal(1000),
        }
    )


def budget_group(user: Any, amount: str) -> GroupPolicy:
    group = Group.objects.create(name="interns")
    group.user_set.add(user)
    return GroupPolicy.objects.create(group=group, monthly_budget=Decimal(amount))


def spend(user: Any, amount: str) -> None:
    """This month's earlier spending, as the ledger holds it."""
    DailyUsage.objects.create(
        user=user, day=limits.today(), model="glm-5", total_tokens=1, cost=Decimal(amount)
    )


def cost_of(user: Any) -> Decimal:
    return DailyUsage.objects.filter(user=user).aggregate(cost=Sum("cost"))["cost"]


def expected_cost(user: Any, input_price: int, output_price: int) -> Decimal:
    replies = Message.objects.filter(conversation__owner=user, role=Message.Role.ASSISTANT)
    tokens = replies.aggregate(prompt=Sum("prompt_tokens"), completion=Sum("completion_tokens"))
    return (tokens["prompt"] * input_price + tokens["completion"] * output_price) / MILLION


async def test_each_reply_costs_its_tokens_at_the_prices_when_it_was_saved(
    alice: Any, fake: Any
) -> None:
    socket = await open_socket(alice)
    assert (await socket.turn("Hello there"))[-1]["type"] == "done"
    first = await database_sync_to_async(expected_cost)(alice, 100, 1000)
    assert first > 0
    assert await database_sync_to_async(cost_of)(alice) == first

    await database_sync_to_async(ChatModel.objects.filter(name="glm-5").update)(
        input_price_per_million=Decimal(200), output_price_per_million=Decimal(3000)
    )
    assert (await socket.turn("And again"))[-1]["type"] == "done"

    second = await database_sync_to_async(last_reply_cost)(alice, 200, 3000)
    assert await database_sync_to_async(cost_of)(alice) == first + second
    await socket.close()


def last_reply_cost(user: Any, input_price: int, output_price: int) -> Decimal:
    reply = Message.objects.filter(conversation__owner=user, role=Message.Role.ASSISTANT).latest(
        "created_at"
    )
    assert reply.prompt_tokens and reply.completion_tokens
    return (reply.prompt_tokens * input_price + reply.completion_tokens * output_price) / MILLION


def test_a_price_change_leaves_past_costs_alone(alice: Any) -> None:
    spend(alice, "1.234567")
    ChatModel.objects.update(input_price_per_million=Decimal(9999))
    assert cost_of(alice) == Decimal("1.234567")


async def test_over_a_groups_budget_a_send_is_refused_before_any_upstream_request(
    alice: Any, fake: Any
) -> None:
    await database_sync_to_async(budget_group)(alice, "0.05")
    await database_sync_to_async(spend)(alice, "0.05")
    socket = await open_socket(alice)

    await socket.send_message("Hello")
    refusal = await socket.event()

    assert refusal["code"] == "budget_exhausted"
    assert "monthly budget of 0.05 USD" in refusal["message"]
    assert "0.05 USD spent this month" in refusal["message"]
    resets = limits.format_moment(limits.next_month_start(limits.today()))
    assert f"It resets at {resets}" in refusal["message"]
    assert fake.requests == []
    assert await database_sync_to_async(Message.objects.count)() == 0
    await socket.close()


async def test_a_persons_own_budget_wins_over_their_groups(alice: Any, fake: Any) -> None:
    from chat.models import UserLimits

    await database_sync_to_async(budget_group)(alice, "100")
    await database_sync_to_async(UserLimits.objects.create)(
        user=alice, monthly_budget=Decimal("0.01")
    )
    await database_sync_to_async(spend)(alice, "0.02")
    socket = await open_socket(alice)

    await socket.send_message("Hello")
    refusal = await socket.event()

    assert refusal["code"] == "budget_exhausted"
    assert "monthly budget of 0.01 USD" in refusal["message"]
    assert fake.requests == []
    await socket.close()


async def test_a_reply_is_capped_to_what_the_budget_leaves(alice: Any, fake: Any) -> None:
    await database_sync_to_async(budget_group)(alice, "1.00")
    await database_sync_to_async(spend)(alice, "0.90")
    socket = await open_socket(alice)

    events = await socket.turn("Quick one", params={"max_tokens": 5000})

    assert events[-1]["type"] == "done"
    # 0.10 left, less the prompt's estimated 7 tokens at 100 per million, at 1000 per million.
    assert fake.requests[-1]["max_tokens"] == int((Decimal("0.10") - Decimal("0.0007")) * 1000)
    await socket.close()


async def test_twenty_sends_at_the_edge_of_a_budget_overspend_by_at_most_one_reply(
    alice: Any, fake: Any
) -> None:
    await database_sync_to_async(budget_group)(alice, "0.20")
    await database_sync_to_async(spend)(alice, "0.10")
    fake.scenario = Scenario(tokens=40, reasoning_tokens=0, delay=0.02)
    sockets = [await open_socket(alice) for _ in range(20)]

    await asyncio.gather(*(s.send_message("Quick one", params={"max_tokens": 40}) for s in sockets))
    answers = [(await s.until("start", "error"))[-1] for s in sockets]
    started = [s for s, answer in zip(sockets, answers, strict=True) if answer["type"] == "start"]
    await asyncio.gather(*(s.until("done", "error") for s in started))

    one_reply = (7 * Decimal(100) + 40 * Decimal(1000)) / MILLION
    spent = await database_sync_to_async(cost_of)(alice)
    assert started and len(started) < 20
    assert spent <= Decimal("0.20") + one_reply
    assert len(fake.requests) == len(started)
    for answer in answers:
        if answer["type"] == "error":
            assert answer["code"] == "budget_exhausted"
            assert "monthly budget of 0.20 USD" in answer["message"]
    for s in sockets:
        await s.close()


@pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="PostgreSQL runs the starts at once; SQLite serialises all writers",
)
def test_starts_on_twenty_connections_hold_no_more_than_the_budget_leaves(alice: Any) -> None:
    """As on twenty workers: what one start holds, the others see."""
    budget_group(alice, "0.20")
    spend(alice, "0.10")
    barrier = threading.Barrier(20)

    def send(index: int) -> Any:
        try:
            barrier.wait()
            return starting.begin_send(
                alice.id, None, "Quick one", f"budget-{index}", {"max_tokens": 40}
            )
        except starting.TurnRefused as refusal:
            return refusal.code
        finally:
            connection.close()

    with ThreadPoolExecutor(20) as pool:
        outcomes = list(pool.map(send, range(20)))

    turns = [outcome for outcome in outcomes if isinstance(outcome, starting.Turn)]
    assert turns and outcomes.count("budget_exhausted") == 20 - len(turns)
    # Each reply at its worst: its estimated 7 prompt tokens and all its max tokens.
    worst = sum((7 * 100 + turn.request.max_tokens * 1000) / MILLION for turn in turns)
    assert worst <= Decimal("0.10")


def test_the_usage_page_shows_cost_and_what_is_left_of_the_budget(alice: Any) -> None:
    budget_group(alice, "10.00")
    spend(alice, "2.504")
    client = Client()
    client.force_login(alice)

    page = client.get("/usage/").content.decode()

    assert '<tr data-limit="Budget this month">' in page
    assert "2.50 USD" in page  # spent
    assert "10.00 USD" in page
    assert "7.50 USD" in page  # left (10 - 2.504, to the cent)
    assert limits.format_moment(limits.next_month_start(limits.today())) in page


# --- Two workers, as deployed -------------------------------------------------------------


@pytest.fixture(scope="module")
def loopback_fake() -> Iterator[FakeUpstream]:
    with FakeUpstream().run_in_thread() as upstream:
        yield upstream


SPENT_UP = """
from decimal import Decimal
from django.contrib.auth.models import Group, User
from chat.models import ChatModel, DailyUsage, GroupPolicy
from chat.turns import starting
from chat.usage import limits
ChatModel.objects.filter(name="glm-5").update(output_price_per_million=Decimal(1000))
group = Group.objects.create(name="interns")
group.user_set.add(User.objects.get(username="alice"))
GroupPolicy.objects.create(group=group, monthly_budget=Decimal("1.00"))
DailyUsage.objects.create(user=User.objects.get(username="alice"), day=limits.today(),
    model="glm-5", total_tokens=1000, cost=Decimal("1.00"))
"""


@pytest.fixture
def app(loopback_fake: FakeUpstream) -> Iterator[App]:
    loopback_fake.reset()
    with glmweb_app(loopback_fake.base_url, UPSTREAM_MODEL="glm-5") as running:
        running.create_user("alice")
        running.manage("shell", "-c", SPENT_UP)
        yield running


async def test_on_two_workers_a_spent_budget_refuses_before_any_upstream_request(
    app: App, loopback_fake: FakeUpstream
) -> None:
    urls = [app.start_worker("a"), app.start_worker("b")]
    cookie = login_cookie(urls[0], "alice")

    for index, url in enumerate(urls):
        socket = await RemoteSocket.open(url, cookie)
        await socket.send(type="send", conversation=None, content="Hi", client_id=f"c{index}")
        refusal = await socket.event()
        await socket.close()
        assert refusal["code"] == "budget_exhausted", refusal
        assert "monthly budget of 1.00 USD" in refusal["message"]

    assert loopback_fake.requests == []


@pytest.mark.parametrize("bad", ["-1", "ten", "NaN", "inf"])
def test_a_bad_default_budget_names_the_variable(monkeypatch: Any, bad: str) -> None:
    from django.core.exceptions import ImproperlyConfigured

    from glmweb.settings import env_decimal

    monkeypatch.setenv("GLMWEB_LIMIT_MONTHLY_BUDGET", bad)
    with pytest.raises(ImproperlyConfigured, match="GLMWEB_LIMIT_MONTHLY_BUDGET"):
        env_decimal("GLMWEB_LIMIT_MONTHLY_BUDGET", Decimal(0))
    monkeypatch.setenv("GLMWEB_LIMIT_MONTHLY_BUDGET", "12.50")
    assert env_decimal("GLMWEB_LIMIT_MONTHLY_BUDGET", Decimal(0)) == Decimal("12.50")
