"""In the browser: a send refused because the budget is spent says which limit and when
it resets, and the message typed stays in the box."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bench.fake_upstream import FakeUpstream
from tests.browser import *  # noqa: F403 (fixtures)
from tests.browser import needs_chromium, sign_up
from tests.servers import App, glmweb_app

pytestmark = needs_chromium

SPENT_UP = """
from decimal import Decimal
from django.contrib.auth.models import Group, User
from chat.models import DailyUsage, GroupPolicy
from chat.usage import limits
erin = User.objects.get(username="erin")
group = Group.objects.create(name="interns")
group.user_set.add(erin)
GroupPolicy.objects.create(group=group, monthly_budget=Decimal("5.00"))
DailyUsage.objects.create(user=erin, day=limits.today(), model="glm-5", cost=Decimal("5.25"))
"""


@pytest.fixture(scope="module")
def app(fake: FakeUpstream) -> Iterator[App]:
    with glmweb_app(fake.base_url) as running:
        running.start_worker("browser")
        yield running


def test_a_spent_budget_is_explained_and_the_message_stays(page, app, fake) -> None:
    site = f"http://127.0.0.1:{app.ports['browser']}"
    fake.reset()
    sign_up(page, site, "erin")
    app.manage("shell", "-c", SPENT_UP)

    box = page.get_by_role("textbox", name="Message")
    box.fill("Summarise the quarterly report, please")
    box.press("Enter")
    alert = page.locator("[role=alert]").filter(has_text="monthly budget")
    alert.wait_for()

    assert "monthly budget of 5.00 USD" in alert.inner_text()
    assert "It resets at" in alert.inner_text()
    assert box.input_value() == "Summarise the quarterly report, please"
    assert fake.requests == []
    assert page.errors == []
