"""The admin's usage and people tables fit a 1366 by 800 laptop screen with the
admin's sidebar open: no column scrolls out of view, however long the names.
In a real Chromium against glmweb under daphne, on a month of seeded use."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.utils import timezone

from bench.fake_upstream import FakeUpstream
from tests.browser import *  # noqa: F403
from tests.browser import admin_page, needs_chromium
from tests.servers import glmweb_app

pytestmark = needs_chromium

# People as a team has them: full names, long addresses, one very long username,
# limits of their own and from a group, so that every column has its widest content.
PEOPLE = """
from decimal import Decimal
from django.contrib.auth.models import Group, User
from chat.models import GroupPolicy, UserLimits
FIRST = ["Margaret", "Katherine", "Alan", "Grace", "Radia", "Edsger"]
LAST = ["Hamilton", "Perlman-Okonkwo", "Turing", "Hopper", "Johnson", "Dijkstra"]
team = Group.objects.create(name="research and development")
GroupPolicy.objects.create(group=team, tokens_per_day=250000, tokens_per_month=3000000,
                           monthly_budget=Decimal("20.00"))
for i, user in enumerate(User.objects.filter(username__startswith="seed").order_by("id")):
    user.first_name, user.last_name = FIRST[i % 6], LAST[(i * 5) % 6]
    user.email = f"{user.first_name}.{user.last_name}@research-department.example.org".lower()
    if i == 0:
        user.username = "margaret.hamilton-longname@research-department.example.org"
        UserLimits.objects.create(user=user, tokens_per_day=1000000, tokens_per_month=25000000,
                                  replies_per_minute=120, concurrent_generations=10,
                                  monthly_budget=Decimal("1250.00"))
    elif i % 4 == 0:
        UserLimits.objects.create(user=user, tokens_per_day=50000, monthly_budget=Decimal(0))
    user.save()
    if i % 2:
        team.user_set.add(user)
"""

LAPTOP = {"width": 1366, "height": 800}


@pytest.fixture(scope="module")
def site(fake: FakeUpstream) -> Iterator[str]:
    with glmweb_app(fake.base_url) as app:
        app.manage("seed", "--users", "24", "--messages", "3000", "--days", "40", "--seed", "3")
        app.manage("shell", "-c", PEOPLE)
        app.create_user("boss", staff=True)
        yield app.start_worker("admin-tables")


def a_month_ago() -> str:
    today = timezone.localdate()
    return f"from={today - timedelta(days=30)}&to={today}"


TABLES = {
    "token usage": ("/admin/chat/dailyusage/", "#usage-table"),
    "token usage over dates": (f"/admin/chat/dailyusage/?{a_month_ago()}", "#usage-table"),
    "report by person": ("/admin/chat/dailyusage/report/?by=person", "#report-table"),
    "report by group": ("/admin/chat/dailyusage/report/?by=group", "#report-table"),
    "report by model": ("/admin/chat/dailyusage/report/?by=model", "#report-table"),
    "people": ("/admin/auth/user/", "#result_list"),
    "limits": ("/admin/chat/userlimits/", "#result_list"),
}

# How far the table runs past its box, and where its last column ends.
MEASURE = """table => {
    const box = table.parentElement;
    const last = table.querySelector('thead tr:last-child > th:last-child');
    return {
        overflow: box.scrollWidth - box.clientWidth,
        page: document.documentElement.scrollWidth,
        lastRight: last.getBoundingClientRect().right,
        sidebar: document.getElementById('nav-sidebar').getBoundingClientRect().width,
    };
}"""


@pytest.mark.parametrize("name", list(TABLES))
def test_every_column_is_in_view_on_a_laptop_beside_the_sidebar(browser, site, name) -> None:
    path, table = TABLES[name]
    page = admin_page(browser, site, "boss", viewport=LAPTOP)
    page.goto(f"{site}{path}")
    assert page.locator(f"{table} tbody tr").count() >= 2

    fit = page.locator(table).evaluate(MEASURE)

    assert fit["sidebar"] > 200  # the sidebar is open
    assert fit["overflow"] <= 0, fit
    assert fit["page"] <= LAPTOP["width"], fit
    assert fit["lastRight"] <= LAPTOP["width"], fit
    page.context.close()


def test_a_long_name_ends_in_an_ellipsis_and_keeps_the_whole_name(browser, site) -> None:
    page = admin_page(browser, site, "boss", viewport=LAPTOP)
    page.goto(f"{site}/admin/chat/dailyusage/?o=user&dir=asc")
    name = page.locator("#usage-table a.usage-name", has_text="margaret.hamilton-longname")

    assert name.get_attribute("title") == (
        "margaret.hamilton-longname@research-department.example.org"
    )
    assert name.evaluate("a => a.scrollWidth > a.clientWidth")  # cut, not wrapped
    page.context.close()


def test_on_a_phone_the_usage_table_scrolls_in_its_box_not_the_page(browser, site) -> None:
    phone = {"width": 390, "height": 844}
    page = admin_page(browser, site, "boss", viewport=phone, is_mobile=True, has_touch=True)
    page.goto(f"{site}/admin/chat/dailyusage/")

    # A page wider than the screen would make the phone lay it out wider and zoom out.
    assert page.evaluate("document.documentElement.scrollWidth") == phone["width"]
    assert page.evaluate("innerWidth") == phone["width"]
    page.context.close()
