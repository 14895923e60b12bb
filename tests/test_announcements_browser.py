"""Announcements in a real Chromium against glmweb under daphne: the banners show,
dismissing one hides it for good (a reload, another browser) and only for that
person, and axe finds no serious problem with them in light or dark."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser import *  # noqa: F403 (fixtures)
from tests.browser import PASSWORD, needs_chromium, wait_until_ready
from tests.servers import glmweb_app
from tests.test_a11y import SIZES, violations

pytestmark = needs_chromium

ANNOUNCE = """
from django.contrib.auth.models import Group
from django.utils import timezone
from datetime import timedelta
from chat.models import Announcement
sales = Group.objects.create(name="sales")
Announcement.objects.create(
    title="Upgrade on Friday",
    body="The chat is down from **18:00** to 19:00. [Details](https://example.org/upgrade).",
    starts_at=timezone.now() - timedelta(hours=1),
)
Announcement.objects.create(
    title="New model for sales",
    level="warning",
    body="Sales can now use `glm-5-pro`. <script>document.title = 'owned'</script>",
).groups.set([sales])
"""


@pytest.fixture(scope="module")
def announced(fake) -> Iterator[str]:
    with glmweb_app(fake.base_url) as app:
        for username in ("alice", "bob", "carol"):
            app.create_user(username)
        app.manage("shell", "-c", ANNOUNCE)
        app.manage(
            "shell",
            "-c",
            "from django.contrib.auth.models import Group, User; "
            "sales = Group.objects.get(name='sales'); "
            "[User.objects.get(username=name).groups.add(sales) for name in ('alice', 'carol')]",
        )
        yield app.start_worker("announcements")


def log_in(browser: Any, site: str, username: str, **options: Any) -> Any:
    context = browser.new_context(**options)
    page = context.new_page()
    page.goto(f"{site}/accounts/login/")
    page.locator("#id_username").fill(username)
    page.locator("#id_password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    wait_until_ready(page)
    return page


def banner(page: Any, title: str) -> Any:
    return page.get_by_role("region", name=title)


def test_a_dismissed_banner_stays_dismissed_for_that_person_only(browser, announced) -> None:
    alice = log_in(browser, announced, "alice")
    errors: list[str] = []
    alice.on("pageerror", lambda error: errors.append(str(error)))
    upgrade, sales = (
        banner(alice, "Upgrade on Friday"),
        banner(alice, "Warning: New model for sales"),
    )
    assert upgrade.is_visible() and sales.is_visible()
    # Newest first: the unscheduled one was saved after the other began to show.
    titles = alice.locator(".announcement-title").all_text_contents()
    assert titles == ["Warning: New model for sales", "Upgrade on Friday"]
    assert upgrade.locator("strong").inner_text() == "18:00"
    assert alice.title != "owned" and sales.locator("script").count() == 0

    upgrade.get_by_role("button", name="Dismiss announcement: Upgrade on Friday").click()
    upgrade.wait_for(state="detached")
    # Focus moves on to the next banner's button rather than being lost.
    assert alice.evaluate("document.activeElement.getAttribute('aria-label')") == (
        "Dismiss announcement: New model for sales"
    )
    assert sales.is_visible()
    assert "Sales can now use" in sales.inner_text()

    alice.reload()
    wait_until_ready(alice)
    assert banner(alice, "Upgrade on Friday").count() == 0
    assert sales.is_visible()

    # Another browser (another device) of alice's: still dismissed there.
    elsewhere = log_in(browser, announced, "alice")
    assert banner(elsewhere, "Upgrade on Friday").count() == 0
    elsewhere.context.close()

    # bob isn't in sales and didn't dismiss anything.
    bob = log_in(browser, announced, "bob")
    assert banner(bob, "Upgrade on Friday").is_visible()
    assert bob.locator(".announcement").count() == 1
    # Signed out meanwhile: the banner stays, and says it wasn't dismissed.
    bob.context.clear_cookies()
    bob.get_by_role("button", name="Dismiss announcement: Upgrade on Friday").click()
    bob.get_by_role("alert").filter(has_text="could not be dismissed").wait_for()
    assert banner(bob, "Upgrade on Friday").is_visible()
    bob.context.close()

    sales.get_by_role("button", name="Dismiss announcement: New model for sales").click()
    alice.locator("#announcements").wait_for(state="detached")
    assert alice.evaluate("document.activeElement.id") == "message"
    alice.reload()
    wait_until_ready(alice)
    assert alice.locator(".announcement").count() == 0
    assert errors == []
    alice.context.close()


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("size", ["desktop", "phone"])
def test_the_banners_have_no_serious_accessibility_violations(
    browser, announced, size, scheme
) -> None:
    # carol is in sales and dismisses nothing: both levels show.
    page = log_in(
        browser,
        announced,
        "carol",
        viewport=SIZES[size],
        color_scheme=scheme,
        bypass_csp=True,  # to inject axe, as tests/test_a11y.py does
        has_touch=size == "phone",
        is_mobile=size == "phone",
    )
    assert page.locator(".announcement").count() == 2
    assert violations(page) == []
    page.context.close()
