"""Groups carry models and limits: the most generous of a person's groups applies, their
own limits win, and a model their groups don't give them is neither offered nor sent."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth.models import Group
from django.test import Client

from chat.models import ChatModel, GroupPolicy, Message, UserLimits
from chat.usage import limits, policy
from tests.conftest import open_socket, use_models

MODELS = [
    {"name": "glm-5", "context_tokens": 200_000, "thinking": True},
    {"name": "glm-4.5-air", "context_tokens": 128_000, "thinking": False, "label": "GLM Air"},
]


@pytest.fixture(autouse=True)
def two_models(settings: Any, transactional_db: None) -> None:
    settings.UPSTREAM_MODEL = "glm-5"
    settings.GLMWEB_LIMIT_TOKENS_PER_DAY = 1000
    settings.GLMWEB_LIMIT_TOKENS_PER_MONTH = 0
    settings.GLMWEB_LIMIT_REPLIES_PER_MINUTE = 0
    settings.GLMWEB_LIMIT_CONCURRENT_GENERATIONS = 3
    settings.GLMWEB_LIMIT_MONTHLY_BUDGET = Decimal(0)
    use_models(*MODELS)


def group_with(name: str, *members: Any, models: tuple[str, ...] = (), **limits: Any) -> Group:
    group = Group.objects.create(name=name)
    group_policy = GroupPolicy.objects.create(group=group, **limits)
    group_policy.allowed_models.set(ChatModel.objects.filter(name__in=models))
    group.user_set.add(*members)
    return group


def client_for(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


# --- Limits ---------------------------------------------------------------------------


def test_a_person_in_no_group_has_the_site_defaults(alice: Any) -> None:
    assert limits.status_for(alice.id)[0].limit == 1000
    assert policy.limits_for(alice.id) == policy.site_defaults()


def test_the_most_generous_group_wins_each_limit(alice: Any) -> None:
    group_with("interns", alice, tokens_per_day=500, replies_per_minute=2)
    group_with("research", alice, tokens_per_day=5000, monthly_budget=Decimal("20.00"))
    group_with("ops", alice, replies_per_minute=10, monthly_budget=Decimal("5.00"))

    in_force = policy.limits_for(alice.id)

    assert in_force.tokens_per_day == 5000
    assert in_force.replies_per_minute == 10
    assert in_force.monthly_budget == Decimal("20.00")
    assert in_force.tokens_per_month == 0  # set by no group: the site's default
    assert in_force.concurrent_generations == 3


def test_unlimited_in_one_group_beats_any_number(alice: Any) -> None:
    group_with("interns", alice, tokens_per_day=500, monthly_budget=Decimal("1.00"))
    group_with("leads", alice, tokens_per_day=0, monthly_budget=Decimal(0))

    in_force = policy.limits_for(alice.id)

    assert in_force.tokens_per_day == 0
    assert in_force.monthly_budget == 0


def test_a_limit_set_on_the_person_wins_over_their_groups(alice: Any, bob: Any) -> None:
    group_with("research", alice, bob, tokens_per_day=5000, monthly_budget=Decimal("20.00"))
    UserLimits.objects.create(user=alice, tokens_per_day=100, monthly_budget=Decimal("2.50"))

    assert policy.limits_for(alice.id).tokens_per_day == 100
    assert policy.limits_for(alice.id).monthly_budget == Decimal("2.50")
    assert policy.limits_for(bob.id).tokens_per_day == 5000


async def test_a_groups_daily_limit_refuses_before_any_upstream_request(
    alice: Any, fake: Any
) -> None:
    await database_sync_to_async(group_with)("interns", alice, tokens_per_day=5)
    socket = await open_socket(alice)

    await socket.send_message("Hello there, how are you today?")
    refusal = await socket.event()

    assert refusal["code"] == "limit_reached"
    assert "daily limit of 5 tokens" in refusal["message"]
    assert fake.requests == []
    await socket.close()


# --- Models -----------------------------------------------------------------------------


def offered_to(user: Any) -> list[str]:
    panel = client_for(user).get("/settings/").json()
    return [model["name"] for model in panel["models"]]


def test_everyone_may_use_every_enabled_model_by_default(alice: Any) -> None:
    assert offered_to(alice) == ["glm-5", "glm-4.5-air"]
    panel = client_for(alice).get("/settings/").json()
    assert panel["models"][1]["label"] == "GLM Air"


def test_a_restricting_group_offers_only_its_models(alice: Any, bob: Any) -> None:
    group_with("interns", alice, models=("glm-4.5-air",))

    assert offered_to(alice) == ["glm-4.5-air"]
    assert offered_to(bob) == ["glm-5", "glm-4.5-air"]
    panel = client_for(alice).get("/settings/").json()
    assert panel["settings"]["model"] == "glm-4.5-air"  # their default: one they may use
    chat_page = client_for(alice).get("/").content.decode()
    assert 'data-model="glm-4.5-air"' in chat_page


def test_a_person_gets_the_union_of_their_groups_models(alice: Any) -> None:
    group_with("interns", alice, models=("glm-4.5-air",))
    group_with("research", alice, models=("glm-5",))

    assert offered_to(alice) == ["glm-5", "glm-4.5-air"]


def test_a_group_naming_no_models_allows_them_all(alice: Any) -> None:
    group_with("interns", alice, models=("glm-4.5-air",))
    group_with("everyone", alice)

    assert offered_to(alice) == ["glm-5", "glm-4.5-air"]


def test_staff_may_use_every_model(alice: Any) -> None:
    group_with("interns", alice, models=("glm-4.5-air",))
    alice.is_staff = True
    alice.save()

    assert offered_to(alice) == ["glm-5", "glm-4.5-air"]


def test_the_settings_refuse_a_model_not_offered_to_the_person(alice: Any) -> None:
    group_with("interns", alice, models=("glm-4.5-air",))

    response = client_for(alice).post(
        "/settings/", json.dumps({"model": "glm-5"}), content_type="application/json"
    )

    assert response.status_code == 400
    assert "glm-4.5-air" in response.json()["errors"]["model"]


async def test_a_send_with_a_model_not_allowed_is_refused_and_nothing_is_saved(
    alice: Any, fake: Any
) -> None:
    await database_sync_to_async(group_with)("interns", alice, models=("glm-4.5-air",))
    socket = await open_socket(alice)

    await socket.send_message("Hello", settings={"model": "glm-5"})
    refusal = await socket.event()

    assert refusal["code"] == "model_not_allowed"
    assert "glm-5" in refusal["message"] and "glm-4.5-air" in refusal["message"]
    assert fake.requests == []
    assert await database_sync_to_async(Message.objects.count)() == 0
    events = await socket.turn("Hello")  # the default: a model they may use
    assert events[-1]["type"] == "done"
    assert fake.requests[-1]["model"] == "glm-4.5-air"
    await socket.close()


async def test_a_conversation_whose_model_was_taken_away_is_refused(alice: Any, fake: Any) -> None:
    socket = await open_socket(alice)
    events = await socket.turn("Hello")
    conversation = events[0]["conversation"]
    assert events[-1]["type"] == "done"
    await database_sync_to_async(group_with)("interns", alice, models=("glm-4.5-air",))

    await socket.send_message("And again", conversation=conversation)
    refusal = await socket.event()
    await socket.send(type="regenerate", conversation=conversation)
    regenerate_refusal = await socket.event()

    assert refusal["code"] == "model_not_allowed"
    assert "model glm-5" in refusal["message"]
    assert regenerate_refusal["code"] == "model_not_allowed"
    assert len(fake.requests) == 1
    count = await database_sync_to_async(
        Message.objects.filter(conversation_id=conversation).count
    )()
    assert count == 2
    await socket.close()


def test_the_group_admin_page_edits_the_groups_models_and_limits(admin_client: Any) -> None:
    group = Group.objects.create(name="interns")
    page = admin_client.get(f"/admin/auth/group/{group.pk}/change/").content.decode()

    assert "policy-0-monthly_budget" in page
    assert "policy-0-allowed_models" in page
    assert "most generous" in page
