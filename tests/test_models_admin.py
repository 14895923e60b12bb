"""The models offered are admin rows seeded from GLMWEB_MODELS, with prices; the admin's
report shows tokens and cost by person, group, model and day, to the cent, and as CSV."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.test import Client

from chat.apps import seed_models
from chat.models import ChatModel, DailyUsage
from chat.params import catalog_from_settings
from chat.usage import limits
from tests.conftest import make_user, use_models

MILLION = Decimal(1_000_000)


def test_the_rows_are_seeded_from_the_setting_on_a_fresh_database(db: None, settings: Any) -> None:
    expected = catalog_from_settings(settings.GLMWEB_MODELS).names()
    assert list(ChatModel.objects.values_list("name", flat=True)) == expected


def test_seeding_again_keeps_the_admins_rows(db: None, settings: Any) -> None:
    use_models({"name": "mine", "context_tokens": 1000, "thinking": False})
    settings.GLMWEB_MODELS = [{"name": "other", "context_tokens": 5, "thinking": False}]

    seed_models(sender=None)  # type: ignore[arg-type]

    assert list(ChatModel.objects.values_list("name", flat=True)) == ["mine"]


def test_a_disabled_model_is_not_offered(alice: Any) -> None:
    use_models(
        {"name": "glm-5", "context_tokens": 1000, "thinking": True},
        {"name": "old", "context_tokens": 1000, "thinking": False, "enabled": False},
    )
    client = Client()
    client.force_login(alice)

    panel = client.get("/settings/").json()

    assert [model["name"] for model in panel["models"]] == ["glm-5"]


def test_the_admin_lists_models_with_their_prices_and_edits_them(admin_client: Any) -> None:
    (model,) = use_models(
        {
            "name": "glm-5",
            "context_tokens": 200_000,
            "thinking": True,
            "input_price_per_million": Decimal("0.6"),
        }
    )
    page = admin_client.get("/admin/chat/chatmodel/").content.decode()
    assert "glm-5" in page and "form-0-output_price_per_million" in page

    response = admin_client.post(
        f"/admin/chat/chatmodel/{model.pk}/change/",
        {
            "name": "glm-5",
            "label": "GLM-5",
            "context_tokens": 200_000,
            "thinking": "on",
            "input_price_per_million": "0.60",
            "output_price_per_million": "2.20",
            "enabled": "on",
            "position": 0,
        },
    )

    assert response.status_code == 302
    model.refresh_from_db()
    assert model.output_price_per_million == Decimal("2.2")
    assert str(model) == "GLM-5 (glm-5)"


# --- The report -----------------------------------------------------------------------


@pytest.fixture
def spending(db: None) -> dict[str, Any]:
    """alice (research) and bob (research, ops) spent on two models over two days."""
    air = {"input_price_per_million": Decimal(2), "output_price_per_million": Decimal(8)}
    use_models(
        {"name": "glm-5", "context_tokens": 1000, "thinking": True, **air},
        {"name": "cheap", "context_tokens": 1000, "thinking": False},
    )
    alice, bob = make_user("alice"), make_user("=bob")
    research, ops = Group.objects.create(name="research"), Group.objects.create(name="ops")
    research.user_set.add(alice, bob)
    ops.user_set.add(bob)
    today = limits.today()
    earlier = today - timedelta(days=1)
    rows = [
        (alice, today, "glm-5", 1234, 567),
        (alice, earlier, "glm-5", 100_000, 25_001),
        (bob, today, "glm-5", 333, 777),
        (bob, today, "cheap", 5000, 5000),
    ]
    for user, day, model, prompt, completion in rows:
        price = ChatModel.objects.get(name=model)
        DailyUsage.objects.create(
            user=user,
            day=day,
            model=model,
            prompt_tokens=prompt,
            completion_tokens=completion,
            total_tokens=prompt + completion,
            replies=1,
            cost=price.cost(prompt, completion),
        )
    return {"alice": alice, "bob": bob, "research": research, "ops": ops}


def priced(prompt: int, completion: int) -> Decimal:
    return (prompt * 2 + completion * 8) / MILLION


def staff_client() -> Client:
    client = Client()
    client.force_login(make_user("admin", is_staff=True, is_superuser=True))
    return client


def csv_rows(client: Client, query: str) -> dict[str, list[str]]:
    response = client.get(f"/admin/chat/dailyusage/report.csv?{query}")
    assert response.status_code == 200
    text = b"".join(response.streaming_content).decode()  # type: ignore[attr-defined]
    return {row[0]: row for row in list(csv.reader(io.StringIO(text)))[1:]}


def cells(page: str, key: str) -> str:
    start = page.index(f'data-key="{key}"')
    return page[start : page.index("</tr>", start)]


def test_cost_by_person_is_tokens_times_the_price_to_the_cent(spending: Any) -> None:
    client = staff_client()
    alice_cost = priced(1234, 567) + priced(100_000, 25_001)
    bob_cost = priced(333, 777)

    page = client.get("/admin/chat/dailyusage/report/?by=person&window=30d").content.decode()
    rows = csv_rows(client, "by=person&window=30d")

    assert alice_cost == Decimal("0.407012")
    assert ">0.41</td>" in cells(page, "alice")
    assert ">0.01</td>" in cells(page, "=bob")  # 0.006882
    assert Decimal(rows["alice"][5]) == alice_cost
    assert rows["alice"][1:4] == ["101234", "25568", "126802"]
    assert Decimal(rows["'=bob"][5]) == bob_cost  # a formula-looking name is escaped
    assert Decimal(rows["Total"][5]) == alice_cost + bob_cost


def test_cost_by_group_model_and_day(spending: Any) -> None:
    client = staff_client()
    alice_cost = priced(1234, 567) + priced(100_000, 25_001)
    bob_cost = priced(333, 777)

    by_group = csv_rows(client, "by=group&window=30d")
    by_model = csv_rows(client, "by=model&window=30d")
    by_day = csv_rows(client, "by=day&window=30d")

    assert Decimal(by_group["research"][5]) == alice_cost + bob_cost
    assert Decimal(by_group["ops"][5]) == bob_cost
    assert Decimal(by_model["glm-5"][5]) == alice_cost + bob_cost
    assert Decimal(by_model["cheap"][5]) == 0 and by_model["cheap"][3] == "10000"
    today = limits.today()
    assert Decimal(by_day[today.isoformat()][5]) == priced(1234, 567) + bob_cost
    assert Decimal(by_day[(today - timedelta(days=1)).isoformat()][5]) == priced(100_000, 25_001)
    page = client.get("/admin/chat/dailyusage/report/?by=model&window=30d").content.decode()
    assert ">0.41</td>" in cells(page, "glm-5")  # 0.413894


def test_a_groups_report_counts_only_its_members(spending: Any) -> None:
    client = staff_client()
    ops = spending["ops"].pk

    by_person = csv_rows(client, f"by=person&window=30d&group={ops}")

    assert set(by_person) == {"'=bob", "Total"}
    assert Decimal(by_person["Total"][5]) == priced(333, 777)


def test_the_report_is_for_staff_only(spending: Any) -> None:
    client = Client()
    client.force_login(spending["alice"])
    assert client.get("/admin/chat/dailyusage/report.csv").status_code == 302
    assert client.get("/admin/chat/dailyusage/report/").status_code == 302
