"""An admin, in a real Chromium against glmweb under daphne, reads the usage
page and a person's daily chart: the figures shown are the seeded ones."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import pytest

from bench.fake_upstream import FakeUpstream
from tests.browser import admin_page
from tests.servers import PASSWORD, App, glmweb_app

CHROMIUM = "/usr/bin/chromium"

pytestmark = pytest.mark.skipif(
    not os.path.exists(CHROMIUM), reason="needs Debian's chromium (make test installs it as root)"
)
playwright_api = pytest.importorskip("playwright.sync_api")

# Straight from the messages, not through the ledger the pages read.
EXPECTED = """
import json
from django.db.models import Sum
from django.db.models.functions import TruncDate
from chat.models import Conversation, Message
replies = Message.objects.filter(role="assistant", total_tokens__isnull=False)
users = {
    row["conversation__owner__username"]: row["total"]
    for row in replies.values("conversation__owner__username").annotate(total=Sum("total_tokens"))
}
heaviest = max(users, key=users.get)
days = {
    str(row["day"]): row["total"]
    for row in replies.filter(conversation__owner__username=heaviest)
    .annotate(day=TruncDate("updated_at")).values("day").annotate(total=Sum("total_tokens"))
}
chat = Conversation.objects.order_by("id").first()
print(json.dumps({"users": users, "heaviest": heaviest, "days": days,
                  "conversation": str(chat.pk), "owner": chat.owner_id}))
"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
        )
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def seeded() -> Iterator[tuple[str, dict[str, Any]]]:
    with FakeUpstream().run_in_thread() as fake, glmweb_app(fake.base_url) as app:
        app.manage("seed", "--users", "4", "--messages", "600", "--days", "20", "--seed", "7")
        app.create_user("boss", staff=True)
        expected = json.loads(app.manage("shell", "-c", EXPECTED).strip().splitlines()[-1])
        yield start(app), expected


def start(app: App) -> str:
    return app.start_worker("admin-browser")


def number(text: str) -> int:
    return int(text.replace(",", "").replace("≈", "").strip() or 0)


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_the_usage_page_and_chart_show_the_seeded_figures(browser, seeded, scheme) -> None:
    site, expected = seeded
    context = browser.new_context(color_scheme=scheme)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{site}/admin/login/?next=/admin/chat/dailyusage/%3Fo%3Duser%26dir%3Dasc")
    page.locator("#id_username").fill("boss")
    page.locator("#id_password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.locator("#usage-table").wait_for()

    shown = {}
    for row in page.locator("#usage-table tbody tr").all():
        name = row.get_attribute("data-user")
        shown[name] = number(row.locator("[data-col=all-total]").inner_text())
    assert {name: total for name, total in shown.items() if total} == expected["users"]

    page.get_by_role("link", name=expected["heaviest"], exact=True).click()
    chart = page.locator("figure.usage-chart svg")
    chart.wait_for()
    bars = {
        day.get_attribute("data-day"): int(day.get_attribute("data-total"))
        for day in page.locator("g.chart-day").all()
    }
    assert len(bars) == 30
    assert {day: total for day, total in bars.items() if total} == expected["days"]
    for day, total in expected["days"].items():
        cell = page.locator(f"table.usage-days tr[data-day='{day}'] td.total")
        assert number(cell.inner_text()) == total
    assert page.locator("rect.chart-completion").count() > 0

    # Readable in this colour scheme: labels take the page's text colour, and
    # the bars differ from the background.
    colours = page.evaluate(
        """() => {
            const label = getComputedStyle(document.querySelector('.chart-label')).fill;
            const body = getComputedStyle(document.querySelector('#content')).color;
            const bar = getComputedStyle(document.querySelector('rect.chart-completion')).fill;
            const bg = getComputedStyle(document.body).backgroundColor;
            return {label, body, bar, bg};
        }"""
    )
    assert colours["label"] == colours["body"]
    assert colours["bar"] != colours["bg"]
    assert errors == []
    context.close()


ADMIN_PAGES = {
    "dashboard": "/admin/",
    "usage": "/admin/chat/dailyusage/",
    "usage over dates": "/admin/chat/dailyusage/?from=2000-01-01&to=2100-01-01",
    "a person's usage": "/admin/chat/dailyusage/user/{owner}/",
    "report by group": "/admin/chat/dailyusage/report/?by=group",
    "report by model": "/admin/chat/dailyusage/report/?by=model",
    "conversations": "/admin/chat/conversation/",
    "a conversation under review": "/admin/chat/conversation/{conversation}/change/",
    "users": "/admin/auth/user/",
    "a person": "/admin/auth/user/{owner}/change/",
    "limits": "/admin/chat/userlimits/",
    "example prompts": "/admin/chat/exampleprompt/",
}


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_the_admin_pages_pass_axe(browser, seeded, scheme) -> None:
    from tests.test_a11y import violations

    site, expected = seeded
    page = admin_page(browser, site, "boss", color_scheme=scheme, bypass_csp=True)

    found = {}
    for name, path in ADMIN_PAGES.items():
        page.goto(f"{site}{path.format(**expected)}")
        found[name] = violations(page)
    problems = {name: found[name] for name in found if found[name]}
    assert problems == {}
    page.context.close()
